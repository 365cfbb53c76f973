package norman_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// The tests run against a real `norman serve` process they start (NORMAN_BIN, or the repository's
// release build, or its debug build), or against NORMAN_TEST_BASE_URL when set.
var (
	baseURL   string
	normanBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	normanBin = findNorman()
	if url := os.Getenv("NORMAN_TEST_BASE_URL"); url != "" { // a server someone else runs (benchmarks)
		baseURL = url
		os.Setenv("NORMAN_BASE_URL", baseURL)
		return m.Run()
	}
	if normanBin == "" {
		fmt.Fprintln(os.Stderr, "no norman program: build it (cargo build --bins) or set NORMAN_BIN")
		return 1
	}
	dataDir := os.Getenv("NORMAN_TEST_DATA_DIR")
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "norman-go-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	// --allow-private-links: the file-pull test fetches from a server of its own on 127.0.0.1.
	serve := exec.Command(normanBin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--allow-private-links")
	// Its log goes to a file (a pipe it inherits would keep `go test` waiting after a crash), and it
	// dies with the test process however that ends.
	logFile, err := os.Create(filepath.Join(dataDir, "serve.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	serve.Stderr = logFile
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := serve.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := serve.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "norman serve:", err)
		return 1
	}
	defer func() {
		_ = serve.Process.Kill()
		_ = serve.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "norman serve listening on ") {
		fmt.Fprintln(os.Stderr, "norman serve did not start:", lines.Text())
		return 1
	}
	baseURL = strings.TrimPrefix(lines.Text(), "norman serve listening on ")
	go func() { // keep draining so the server never blocks on a full pipe
		for lines.Scan() {
		}
	}()
	os.Setenv("NORMAN_BASE_URL", baseURL) // for the examples, which configure from the environment
	return m.Run()
}

func findNorman() string {
	if bin := os.Getenv("NORMAN_BIN"); bin != "" {
		return bin
	}
	for _, profile := range []string{"release", "debug"} {
		for _, target := range []string{os.Getenv("CARGO_TARGET_DIR"), "../../../target"} {
			if target == "" {
				continue
			}
			bin, _ := filepath.Abs(filepath.Join(target, profile, "norman"))
			if _, err := os.Stat(bin); err == nil {
				return bin
			}
		}
	}
	return ""
}

// account is a fresh account on the test server with a client holding its token.
type account struct {
	client *norman.Client
	id     string
}

func newAccount(t testing.TB) account {
	t.Helper()
	anon := newClient(t, "")
	login, err := anon.SignupDefault(context.Background())
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	if login.Account == nil || login.AccessToken == "" {
		t.Fatalf("signup returned no account or token: %+v", login)
	}
	return account{client: newClient(t, login.AccessToken), id: login.Account.ID}
}

func newClient(t testing.TB, token norman.Secret) *norman.Client {
	t.Helper()
	c, err := norman.NewClient(norman.Config{BaseURL: baseURL, Token: token, WorkerThreads: 2})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newModel creates a model with a "File" asset and returns the asset's target.
func (a account) newModel(t testing.TB, name string) (norman.Model, norman.Target) {
	t.Helper()
	model, err := a.client.CreateModel(context.Background(), norman.NewModel(a.id, name, "v1", "File"))
	if err != nil {
		t.Fatalf("create model: %v", err)
	}
	assetID := model.AssetID("File")
	if assetID == "" || assetID == "0" {
		t.Fatalf("the model has no File asset id: %+v", model.Assets)
	}
	return model, norman.AssetTarget(a.id, model.ID, assetID)
}

// randomFile writes size random bytes to a new file and returns its path.
func randomFile(t testing.TB, size int) string {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("random-%d.bin", size))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cliChecksum is what the Rust program says the file's checksum is.
func cliChecksum(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command(normanBin, "checksum", path).Output()
	if err != nil {
		t.Fatalf("norman checksum: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("norman checksum printed nothing")
	}
	return fields[0]
}

func withTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
