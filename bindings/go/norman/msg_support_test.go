package norman_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// startProgram runs `norman ARGS...` until the test ends and returns the address its first stdout
// line announces after prefix ("norman msg listening on ").
func startProgram(t *testing.T, prefix string, args ...string) string {
	t.Helper()
	if normanBin == "" {
		t.Fatal("no norman program: build it or set NORMAN_BIN")
	}
	cmd := exec.Command(normanBin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), prefix) {
		t.Fatalf("norman %s did not start: %q", strings.Join(args, " "), lines.Text())
	}
	addr := strings.TrimPrefix(lines.Text(), prefix)
	go func() { // keep draining so the program never blocks on a full pipe
		for lines.Scan() {
		}
	}()
	return addr
}

// msgServe starts `norman msg serve` with extra flags (layers) on loopback.
func msgServe(t *testing.T, flags ...string) string {
	return startProgram(t, "norman msg listening on ", append([]string{"msg", "serve", "--listen", "127.0.0.1:0"}, flags...)...)
}

// keyFile writes key to a file of the test's temporary folder.
func keyFile(t *testing.T, key []byte) string {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func layers(t testing.TB, l ...norman.Layer) *norman.Layers {
	t.Helper()
	s, err := norman.NewLayers(l...)
	if err != nil {
		t.Fatalf("new layers: %v", err)
	}
	return s
}

func dial(t testing.TB, c *norman.Client, addr string, l *norman.Layers) *norman.Conn {
	t.Helper()
	conn, err := norman.Dial(withTimeout(t, 10*time.Second), c, addr, &norman.DialOptions{Layers: l})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func request(t testing.TB, conn *norman.Conn, typ norman.MsgType, uri string, content []byte, opts ...norman.Option) *norman.Message {
	t.Helper()
	reply, err := conn.Request(withTimeout(t, 10*time.Second), typ, uri, content, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", typ, uri, err)
	}
	return reply
}

// expectRemote checks err is a *RemoteError whose reply has type typ.
func expectRemote(t testing.TB, what string, err error, typ norman.MsgType) *norman.RemoteError {
	t.Helper()
	var remote *norman.RemoteError
	if !errors.As(err, &remote) || !errors.Is(err, norman.ErrMsgRemote) {
		t.Fatalf("%s: got %v, want a *RemoteError", what, err)
	}
	if remote.Reply.Type != typ {
		t.Fatalf("%s: the reply is %s %q, want %s", what, remote.Reply.Type, remote.Reply.Content, typ)
	}
	return remote
}

// receive waits for the next message of ch; ok is false when ch closed.
func receive(t testing.TB, ch <-chan *norman.Message) (*norman.Message, bool) {
	t.Helper()
	select {
	case m, ok := <-ch:
		return m, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
		return nil, false
	}
}

// expectClosed waits until ch is closed, skipping what is still in it.
func expectClosed(t testing.TB, what string, ch <-chan *norman.Message) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("%s: the channel is still open after 10 s", what)
		}
	}
}

func echo(_ context.Context, call *norman.Call) (*norman.Reply, error) {
	return norman.Respond(call.Content), nil
}
