package norman_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

func TestPersistModels(t *testing.T) {
	a := newAccount(t)
	ctx := withTimeout(t, time.Minute)
	ids := map[string]string{}
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		m, _ := a.newModel(t, name)
		if m.ID == "" || m.ID == "0" || m.AccountID != a.id || m.Name != name || !m.Active {
			t.Fatalf("created %+v", m)
		}
		ids[name] = m.ID
	}
	byName, err := a.client.GetModels(ctx, norman.GetModelsRequest{Constraints: norman.WhereEquals("Models", "Name", "bravo")})
	if err != nil || len(byName) != 1 || byName[ids["bravo"]].Name != "bravo" {
		t.Fatalf("models named bravo: %v, %v", byName, err)
	}
	byID, err := a.client.GetModels(ctx, norman.GetModelsRequest{
		Constraints: norman.WhereIn("Models", "ID", ids["alpha"], ids["charlie"])})
	if err != nil || len(byID) != 2 {
		t.Fatalf("models by id: %v, %v", byID, err)
	}
	bases, err := a.client.GetModelBases(ctx, norman.GetModelsRequest{})
	if err != nil || len(bases) != 3 {
		t.Fatalf("model bases: %d, %v", len(bases), err)
	}
	deleted, err := a.client.DeleteModels(ctx, *norman.WhereIn("Models", "ID", ids["alpha"]))
	if err != nil || deleted != 1 {
		t.Fatalf("deleted %d, %v", deleted, err)
	}
	left, err := a.client.GetModels(ctx, norman.GetModelsRequest{})
	if err != nil || len(left) != 2 {
		t.Fatalf("after delete: %d models, %v", len(left), err)
	}
	if _, ok := left[ids["alpha"]]; ok {
		t.Fatal("the deleted model is still there")
	}
}

// The dev backend's "echo" model copies an invocation's input to its output and sets its flags.
func TestInvocationInputsOutputsAndStatusFlags(t *testing.T) {
	a := newAccount(t)
	ctx := withTimeout(t, time.Minute)
	model, _ := a.newModel(t, "echo")
	slot := func(title string) norman.InvocationSignature {
		return norman.InvocationSignature{AccountID: a.id, ModelID: model.ID, SignatureID: "0", DisplayTitle: title}
	}
	created, err := a.client.CreateInvocations(ctx, norman.Invocation{AccountID: a.id, ModelID: model.ID,
		Inputs: []norman.InvocationSignature{slot("prompt")}, Outputs: []norman.InvocationSignature{slot("reply")}})
	if err != nil || len(created) != 1 || len(created[0].Inputs) != 1 || len(created[0].Outputs) != 1 {
		t.Fatalf("create invocation: %+v, %v", created, err)
	}
	inv := created[0]
	inputID, outputID := inv.Inputs[0].ID, inv.Outputs[0].ID

	path := randomFile(t, 777_777)
	pushed, err := a.client.PushFile(ctx, norman.InputTarget(a.id, model.ID, inv.ID, inputID), path, nil)
	if err != nil || pushed.Checksum.String() != cliChecksum(t, path) {
		t.Fatalf("push input: %+v, %v", pushed, err)
	}
	out := filepath.Join(t.TempDir(), "reply.bin")
	got, err := a.client.RetrieveFile(ctx, norman.OutputTarget(a.id, model.ID, inv.ID, outputID), out)
	if err != nil || got != pushed {
		t.Fatalf("the echo output: %+v, %v; want %+v", got, err, pushed)
	}

	flags, err := a.client.GetFlagsOf(ctx, outputID)
	if err != nil || len(flags[outputID]) == 0 {
		t.Fatalf("flags of the output: %v, %v", flags, err)
	}
	if state, err := norman.StateOfFlags(flags[outputID]); err != nil || state != norman.EntityDone {
		t.Fatalf("state of its flags: %v, %v", state, err)
	}
	if state, err := a.client.EntityState(ctx, outputID); err != nil || state != norman.EntityDone {
		t.Fatalf("entity state: %v, %v", state, err)
	}
	if state, err := a.client.EntityState(ctx, "no-such-entity"); err != nil || state != norman.EntityPending {
		t.Fatalf("entity state of an unknown id: %v, %v", state, err)
	}
	failed := append(flags[outputID], norman.StatusFlag{AccountID: a.id, EntityID: outputID,
		FlagName: "Output_S3_Storage", FlagValue: norman.FlagError})
	if state, _ := norman.StateOfFlags(failed); state != norman.EntityFailed {
		t.Fatalf("a flag in Error: %v", state)
	}

	listed, err := a.client.GetInvocations(ctx, norman.WhereIn("Invocations", "ID", inv.ID))
	if err != nil || listed[inv.ID].ModelID != model.ID {
		t.Fatalf("get invocations: %v, %v", listed, err)
	}
	byName, err := a.client.CreateInvocationsByName(ctx, map[string]int{"echo": 2})
	if err != nil || len(byName) != 2 || byName[0].ModelID != model.ID {
		t.Fatalf("invocations by name: %+v, %v", byName, err)
	}
	if _, err := a.client.GetNotifications(ctx, nil); err != nil {
		t.Fatalf("notifications: %v", err)
	}
}

func TestFilePullFetchesALink(t *testing.T) {
	a := newAccount(t)
	ctx := withTimeout(t, time.Minute)
	model, target := a.newModel(t, "pulled")
	content := make([]byte, 400_000)
	rand.Read(content)
	link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content)
	}))
	defer link.Close()

	ids, err := a.client.SubmitAssetLinks(ctx, norman.AssetDownloadRequest{AccountID: a.id, ModelID: model.ID,
		Links: []string{link.URL + "/weights.bin"}, AssetID: target.ID, AssetName: "File"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("submit: %v, %v", ids, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		meta, err := a.client.DownloadMetadata(ctx, ids[0])
		if err != nil {
			t.Fatalf("metadata: %v", err)
		}
		if meta.EntityType != "Asset" || meta.Asset == nil {
			t.Fatalf("metadata of an asset pull: %+v", meta)
		}
		if meta.TotalBytes > 0 && meta.DownloadedBytes == meta.TotalBytes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pull did not finish: %+v", meta)
		}
	}
	d, err := a.client.Retrieve(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the pulled asset differs (%v)", err)
	}
	_, err = a.client.SubmitAssetLinks(ctx, norman.AssetDownloadRequest{AccountID: a.id, ModelID: model.ID,
		Links: []string{"file:///etc/passwd"}, AssetID: target.ID, AssetName: "File"})
	var e *norman.Error
	if !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("a file: link: %v", err)
	}
}

func TestGenericRequestAndTokens(t *testing.T) {
	a := newAccount(t)
	ctx := context.Background()
	resp, err := a.client.Request(ctx, "POST", "persist/flags/get", nil)
	if err != nil || !resp.OK() {
		t.Fatalf("request: %+v, %v", resp, err)
	}
	var flags map[string][]norman.StatusFlag
	if err := resp.JSON(&flags); err != nil {
		t.Fatal(err)
	}
	// Any status is a Response, not an error.
	resp, err = a.client.Request(ctx, "GET", "no/such/route", nil)
	if err != nil || resp.Status != 404 || resp.OK() {
		t.Fatalf("request of an unknown route: %+v, %v", resp, err)
	}
	// SetToken switches accounts: a new client without a token, then with the account's.
	anon := newClient(t, "")
	if _, err := anon.GetStatusFlags(ctx, nil); !errors.Is(err, norman.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	login, err := anon.LoginDefault(ctx, a.id)
	if err != nil || login.AccessToken == "" {
		t.Fatalf("login: %v", err)
	}
	if err := anon.SetToken(login.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.GetStatusFlags(ctx, nil); err != nil {
		t.Fatalf("after SetToken: %v", err)
	}
	if norman.Version() == "" {
		t.Fatal("no version")
	}
}
