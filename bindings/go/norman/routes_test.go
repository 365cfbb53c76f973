package norman_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// generationServer stands for a backend of one generation: the model routes answer the models
// they were sent, ids assigned, as a list in request order ("list", today's backend) or as a map of
// id to model ("map", the earlier one). Other answers are given verbatim by raw.
func generationServer(t *testing.T, shape string, raw string) *norman.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw != "" {
			io.WriteString(w, raw)
			return
		}
		var models []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&models); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		byID := map[string]any{}
		for i, m := range models {
			if id, _ := m["id"].(string); id == "" || id == "0" {
				m["id"] = fmt.Sprintf("%s-%d", strings.ReplaceAll(r.URL.Path, "/", ""), i)
			}
			m["model_base_id"] = "base-" + m["id"].(string)
			byID[m["id"].(string)] = m
		}
		var answer any = models
		if shape == "map" {
			answer = byID
		}
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	c, err := norman.NewClient(norman.Config{BaseURL: srv.URL + "/v0/", Token: "tok", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestModelAnswersOfEitherBackendGeneration(t *testing.T) {
	ctx := withTimeout(t, time.Minute)
	for _, shape := range []string{"list", "map"} {
		c := generationServer(t, shape, "")
		one, err := c.CreateModel(ctx, norman.NewModel("acc", "solo", "v1", "File"))
		if err != nil || one.Name != "solo" || one.ID == "" || one.ModelBaseID != "base-"+one.ID || len(one.Assets) != 1 {
			t.Fatalf("%s: CreateModel: %+v, %v", shape, one, err)
		}
		calls := map[string]func(...norman.Model) (map[string]norman.Model, error){
			"CreateModels":        func(m ...norman.Model) (map[string]norman.Model, error) { return c.CreateModels(ctx, m...) },
			"CreateModelVersions": func(m ...norman.Model) (map[string]norman.Model, error) { return c.CreateModelVersions(ctx, m...) },
			"UpdateModels":        func(m ...norman.Model) (map[string]norman.Model, error) { return c.UpdateModels(ctx, m...) },
		}
		for name, call := range calls {
			kept := norman.NewModel("acc", "kept", "v2")
			kept.ID = "given-id"
			got, err := call(norman.NewModel("acc", "a", "v1"), norman.NewModel("acc", "b", "v1"), kept)
			if err != nil || len(got) != 3 || got["given-id"].Name != "kept" {
				t.Fatalf("%s: %s: %+v, %v", shape, name, got, err)
			}
			names := map[string]bool{}
			for id, m := range got {
				if m.ID != id || m.ModelBaseID != "base-"+id {
					t.Fatalf("%s: %s: model under %q: %+v", shape, name, id, m)
				}
				names[m.Name] = true
			}
			if !names["a"] || !names["b"] {
				t.Fatalf("%s: %s: names %v", shape, name, names)
			}
		}
	}
	// Answers of neither shape, or lists that would lose models in a map, are ErrDecode.
	for _, raw := range []string{`7`, `null`, `"x"`, `[{"name":"no id"}]`, `[{"id":"0","name":"unassigned"}]`,
		`[{"id":"a","name":"x"},{"id":"a","name":"y"}]`, `{"a":7}`, `[7]`} {
		c := generationServer(t, "", raw)
		if _, err := c.CreateModels(ctx, norman.NewModel("acc", "a", "v1")); err == nil {
			t.Fatalf("%s: accepted", raw)
		} else {
			expectCode(t, raw, err, norman.ErrDecode)
		}
		if _, err := c.CreateModel(ctx, norman.NewModel("acc", "a", "v1")); err == nil {
			t.Fatalf("%s: CreateModel accepted", raw)
		}
	}
	if _, err := generationServer(t, "", `[]`).CreateModel(ctx, norman.NewModel("acc", "a", "v1")); err == nil {
		t.Fatal("an empty answer to CreateModel is accepted")
	}
}

// recorder is a loopback HTTP server that keeps every request it receives.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+req.URL.RequestURI()+" auth="+req.Header.Get("Authorization"))
		r.mu.Unlock()
		io.WriteString(w, "{}")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func TestTheTokenGoesToTheBaseURLOnly(t *testing.T) {
	home, other := newRecorder(t), newRecorder(t)
	const token = "tok-must-stay-home-42"
	c, err := norman.NewClient(norman.Config{BaseURL: home.URL + "/v0/", Token: token, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := withTimeout(t, time.Minute)
	host := strings.TrimPrefix(other.URL, "http://")
	for _, form := range []string{"http://%s/steal", "HTTP://%s/steal", "https://%s/steal", " http://%s/steal",
		"\t\nhttp://%s/steal", "ht\ttp://%s/steal", `\\%s/steal`, `/\\%s/steal`, `\/%s/steal`, " //%s/steal",
		"http://x@%s/steal"} {
		route := fmt.Sprintf(form, host)
		_, err := c.Request(ctx, "GET", route, nil)
		expectCode(t, route, err, norman.ErrInvalidArgument)
		err = c.Call(ctx, "POST", route, map[string]int{"a": 1}, nil)
		expectCode(t, route, err, norman.ErrInvalidArgument)
	}
	for _, route := range []string{"../steal", "%2e%2e/steal", "a/../../steal"} {
		_, err := c.Request(ctx, "GET", route, nil)
		expectCode(t, route, err, norman.ErrInvalidArgument)
	}
	if resp, err := c.Request(ctx, "GET", "persist/x", nil); err != nil || resp.Status != 200 {
		t.Fatalf("a route under the base: %v, %v", resp, err)
	}
	if got := other.requests(); len(got) != 0 {
		t.Fatalf("the other host received %q", got)
	}
	if got := home.requests(); len(got) != 1 || got[0] != "GET /v0/persist/x auth=Bearer "+token {
		t.Fatalf("the base received %q", got)
	}
}
