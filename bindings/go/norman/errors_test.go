package norman_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// deadAddress is a loopback port nothing listens on.
func deadAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func expectCode(t *testing.T, what string, err error, code norman.Code) *norman.Error {
	t.Helper()
	if !errors.Is(err, code) {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
	var e *norman.Error
	if !errors.As(err, &e) || e.Code != code || e.Message == "" {
		t.Fatalf("%s: not a *norman.Error with code %v and a message: %#v", what, code, err)
	}
	return e
}

func TestErrorsOfConfigAndArguments(t *testing.T) {
	ctx := context.Background()
	_, err := norman.NewClient(norman.Config{ChunkSize: 1 << 20, FlushSize: 1024})
	expectCode(t, "flush below chunk", err, norman.ErrInvalidConfig)
	_, err = norman.NewClient(norman.Config{Timeout: time.Microsecond})
	expectCode(t, "sub-millisecond timeout", err, norman.ErrInvalidConfig)
	_, err = norman.NewClient(norman.Config{WorkerThreads: -1})
	expectCode(t, "negative workers", err, norman.ErrInvalidConfig)
	_, err = norman.NewClient(norman.Config{BaseURL: baseURL, Token: "token\x00cut-here"})
	expectCode(t, "NUL in a token", err, norman.ErrInvalidArgument)
	_, err = norman.NewClient(norman.Config{BaseURL: baseURL + "\x00"})
	expectCode(t, "NUL in a base URL", err, norman.ErrInvalidArgument)

	// The placeholder base URL makes a client whose HTTP calls say what to set.
	c, err := norman.NewClient(norman.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Request(ctx, "GET", "persist/flags/get", nil)
	if e := expectCode(t, "request with the placeholder URL", err, norman.ErrInvalidConfig); !strings.Contains(e.Message, "NORMAN_BASE_URL") {
		t.Errorf("the message does not say what to set: %s", e.Message)
	}
	c.Close()

	a := newAccount(t)
	_, err = a.client.Request(ctx, "GET", "route\x00with-nul", nil)
	expectCode(t, "NUL in a route", err, norman.ErrInvalidArgument)
	expectCode(t, "NUL in a new token", a.client.SetToken("x\x00y"), norman.ErrInvalidArgument)
	_, err = a.client.EntityState(ctx, "id\x00")
	expectCode(t, "NUL in an entity id", err, norman.ErrInvalidArgument)
	_, err = a.client.PushFile(ctx, norman.AssetTarget(a.id, "m", "a"), "/tmp/\x00", nil)
	expectCode(t, "NUL in a path", err, norman.ErrInvalidArgument)
	_, err = a.client.Request(ctx, "FETCH", "persist/flags/get", nil)
	expectCode(t, "unknown method", err, norman.ErrInvalidArgument)
	_, err = a.client.Request(ctx, "POST", "persist/flags/get", []byte("{not json"))
	expectCode(t, "invalid JSON body", err, norman.ErrInvalidJSON)
	_, err = a.client.Request(ctx, "POST", "persist/flags/get", func() {})
	expectCode(t, "unencodable body", err, norman.ErrInvalidJSON)
	_, err = a.client.BeginUpload(ctx, norman.AssetTarget(a.id, "m", "a"), -1)
	expectCode(t, "negative size", err, norman.ErrInvalidArgument)
	_, err = a.client.PushFile(ctx, norman.Target{Kind: 42, AccountID: a.id}, "/dev/null", nil)
	expectCode(t, "unknown target kind", err, norman.ErrInvalidArgument)
	_, err = norman.ParseDigest("not-hex")
	expectCode(t, "bad checksum text", err, norman.ErrInvalidArgument)
	//lint:ignore SA1012 a nil context is what is being tested
	_, err = a.client.Request(nil, "GET", "x", nil) //nolint:staticcheck
	expectCode(t, "nil context", err, norman.ErrNullArgument)
}

func TestErrorsOfPairings(t *testing.T) {
	a := newAccount(t)
	ctx := context.Background()
	good := norman.Pairing{PairingID: "p", Host: "127.0.0.1", Port: 1,
		EncryptionKey:        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		Nonce:                "ZGVmZ2hpamtsbW5v",
		AuthenticationHeader: "bm9ybWFuLWMtdGVzdC1oZWFkZXItMDEyMw=="}
	for name, p := range map[string]norman.Pairing{
		"key not 32 bytes":   func(p norman.Pairing) norman.Pairing { p.EncryptionKey = "AAEC"; return p }(good),
		"nonce not 12 bytes": func(p norman.Pairing) norman.Pairing { p.Nonce = "AAECAwQF"; return p }(good),
		"key not base64":     func(p norman.Pairing) norman.Pairing { p.EncryptionKey = "%%%"; return p }(good),
		"port 0":             func(p norman.Pairing) norman.Pairing { p.Port = 0; return p }(good),
		"port too large":     func(p norman.Pairing) norman.Pairing { p.Port = 70000; return p }(good),
		"empty host":         func(p norman.Pairing) norman.Pairing { p.Host = ""; return p }(good),
	} {
		_, err := a.client.OpenUpload(ctx, p)
		e := expectCode(t, name, err, norman.ErrInvalidPairing)
		if strings.Contains(e.Error(), string(good.EncryptionKey)) {
			t.Fatalf("%s: the error shows the key: %v", name, e)
		}
	}
	// A valid pairing on a port nobody listens on.
	dead := deadAddress(t)
	host, port, _ := net.SplitHostPort(dead)
	good.Host = host
	fmt.Sscan(port, &good.Port)
	_, err := a.client.OpenUpload(ctx, good)
	expectCode(t, "upload to a dead port", err, norman.ErrConnect)
}

func TestErrorsOfTheNetwork(t *testing.T) {
	ctx := context.Background()
	dead, err := norman.NewClient(norman.Config{BaseURL: "http://" + deadAddress(t) + "/v0/", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	_, err = dead.SignupDefault(ctx)
	expectCode(t, "dead host", err, norman.ErrConnect)

	silent, err := norman.NewClient(norman.Config{BaseURL: "http://" + silentServer(t) + "/v0/",
		Timeout: 200 * time.Millisecond, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_, err = silent.SignupDefault(ctx)
	expectCode(t, "server that never answers", err, norman.ErrTimeout)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("the 200 ms timeout took %v", elapsed)
	}
	// A context deadline ends the wait sooner than the client's timeout.
	slow, err := norman.NewClient(norman.Config{BaseURL: "http://" + silentServer(t) + "/v0/", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	deadline, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = slow.SignupDefault(deadline)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, norman.ErrTimeout) {
		t.Fatalf("context deadline: %v", err)
	}
	// Opening an upload or a download waits on the server too: the context ends those waits.
	target := norman.AssetTarget("account", "model", "asset")
	for name, open := range map[string]func(context.Context) error{
		"begin upload": func(ctx context.Context) error { _, err := slow.BeginUpload(ctx, target, 10); return err },
		"retrieve":     func(ctx context.Context) error { _, err := slow.Retrieve(ctx, target); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err := open(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("%s past the context's deadline: %v after %v", name, err, time.Since(start))
		}
	}
}

func TestErrorsOfTheBackend(t *testing.T) {
	a := newAccount(t)
	ctx := context.Background()
	_, target := a.newModel(t, "go-errors")

	const token = "not-a-real-token-but-long-enough"
	stranger := newClient(t, token)
	_, err := stranger.GetStatusFlags(ctx, nil)
	e := expectCode(t, "bad token", err, norman.ErrUnauthorized)
	if e.Status != 401 && e.Status != 403 {
		t.Errorf("status %d", e.Status)
	}
	if strings.Contains(e.Error(), token) {
		t.Fatalf("the error shows the token: %v", e)
	}
	if cfg := fmt.Sprintf("%+v %#v", norman.Config{Token: token}, norman.Config{Token: token}); strings.Contains(cfg, token) {
		t.Fatalf("a Config prints its token: %s", cfg)
	}

	_, err = a.client.Retrieve(ctx, target)
	expectCode(t, "retrieve of a file never uploaded", err, norman.ErrNotFound)
	err = a.client.Call(ctx, "GET", "no/such/route", nil, nil)
	expectCode(t, "unknown route", err, norman.ErrNotFound)
	var wrongShape []int
	err = a.client.Call(ctx, "PUT", "authenticate/signup/default", nil, &wrongShape)
	expectCode(t, "response of another shape", err, norman.ErrDecode)

	// A stream shorter than the size it announced: the backend refuses it at completion.
	upload, err := a.client.BeginUpload(ctx, target, 1000)
	if err != nil {
		t.Fatal(err)
	}
	upload.Write(make([]byte, 10))
	if _, err := upload.Finish(); err == nil {
		t.Fatal("a short upload was accepted")
	}
	if _, err := upload.Write([]byte{1}); err == nil {
		t.Fatal("a write after a failed finish was accepted")
	}

	// A closed client refuses calls; Close twice is fine.
	c := newClient(t, "")
	c.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = c.SignupDefault(ctx)
	expectCode(t, "closed client", err, norman.ErrClosed)
}

func TestClosingTheClientCancelsItsOperations(t *testing.T) {
	c, err := norman.NewClient(norman.Config{BaseURL: "http://" + silentServer(t) + "/v0/", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// A request, and opens blocked in C waiting for the server: Close ends them all.
	target := norman.AssetTarget("account", "model", "asset")
	calls := map[string]func() error{
		"request":      func() error { _, err := c.SignupDefault(context.Background()); return err },
		"begin upload": func() error { _, err := c.BeginUpload(context.Background(), target, 10); return err },
		"retrieve":     func() error { _, err := c.Retrieve(context.Background(), target); return err },
	}
	results := make(map[string]chan error)
	for name, call := range calls {
		results[name] = make(chan error, 1)
		go func(call func() error, result chan error) { result <- call() }(call, results[name])
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	c.Close()
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("Close took %v", elapsed)
	}
	for name, result := range results {
		select {
		case err := <-result:
			expectCode(t, name+" of a closed client", err, norman.ErrCancelled)
		case <-time.After(10 * time.Second):
			t.Fatalf("closing the client did not end its %s", name)
		}
	}
}

func TestAContextEndsAWriteBlockedOnASilentReceiver(t *testing.T) {
	c := newClient(t, "")
	host, port, _ := net.SplitHostPort(silentServer(t)) // accepts, never reads: the socket fills up
	pairing := norman.Pairing{PairingID: "p", Host: host,
		EncryptionKey:        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		Nonce:                "ZGVmZ2hpamtsbW5v",
		AuthenticationHeader: "bm9ybWFuLWMtdGVzdC1oZWFkZXItMDEyMw=="}
	fmt.Sscan(port, &pairing.Port)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	upload, err := c.OpenUpload(ctx, pairing)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; i < 4096 && err == nil; i++ {
		_, err = upload.Write(chunk)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, norman.ErrTimeout) {
		t.Fatalf("blocked write past the context's deadline: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second { // the client's own timeout is 10 s
		t.Fatalf("the write ended after %v, not at the context's deadline", elapsed)
	}
	upload.Abort() // after the fact: harmless
	if err := upload.Close(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close after the deadline: %v", err)
	}
}

func TestSetTokenWhileCallsRun(t *testing.T) {
	a := newAccount(t)
	login, err := a.client.LoginDefault(context.Background(), a.id)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() { // calls that may fail with the made-up token and scrub their errors
			defer wg.Done()
			for j := 0; j < 20; j++ {
				a.client.GetStatusFlags(context.Background(), nil)
			}
		}()
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if (i+j)%2 == 0 {
					a.client.SetToken("not-the-token-of-this-account")
				} else {
					a.client.SetToken(login.AccessToken)
				}
			}
		}(i)
	}
	wg.Wait()
	if err := a.client.SetToken(login.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.GetStatusFlags(context.Background(), nil); err != nil {
		t.Fatalf("after the last SetToken: %v", err)
	}
}

func TestAnEchoedTokenIsScrubbedFromErrors(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"detail":"token %s is not known"}`, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	const token = "tok_echoed-bearer-token-77"
	c, err := norman.NewClient(norman.Config{BaseURL: echo.URL + "/v0/", Token: token, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetStatusFlags(context.Background(), nil)
	e := expectCode(t, "echoing server", err, norman.ErrUnauthorized)
	if strings.Contains(e.Error(), token) || !strings.Contains(e.Message, "Bearer <redacted>") {
		t.Fatalf("the echoed token is not scrubbed: %v", e)
	}
}
