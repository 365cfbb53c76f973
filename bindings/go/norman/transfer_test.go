package norman_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

func TestChecksumAgreesWithTheCLI(t *testing.T) {
	for _, size := range []int{0, 1, 4095, 1 << 20, 3<<20 + 17} {
		path := randomFile(t, size)
		want := cliChecksum(t, path)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := norman.Checksum(f)
		f.Close()
		if err != nil || got.String() != want {
			t.Fatalf("size %d: Checksum = %v, %v; norman checksum says %s", size, got, err, want)
		}
		data, _ := os.ReadFile(path)
		if norman.ChecksumBytes(data).String() != want {
			t.Fatalf("size %d: ChecksumBytes disagrees", size)
		}
		// hash.Hash64: any chunking gives the same digest; Sum appends it big-endian.
		h := norman.NewHasher()
		for rest := data; len(rest) > 0; {
			n := 1 + len(rest)%7919
			if n > len(rest) {
				n = len(rest)
			}
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if fmt.Sprintf("%016x", h.Sum64()) != want || fmt.Sprintf("%x", h.Sum([]byte{})) != want {
			t.Fatalf("size %d: Hasher = %016x / %x, want %s", size, h.Sum64(), h.Sum(nil), want)
		}
		h.Reset()
		if h.Sum64() != uint64(norman.ChecksumBytes(nil)) {
			t.Fatal("Reset does not start over")
		}
		parsed, err := norman.ParseDigest(want)
		if err != nil || parsed != got {
			t.Fatalf("ParseDigest(%s) = %v, %v", want, parsed, err)
		}
	}
}

func TestPushFileAndRetrieveRoundTrip(t *testing.T) {
	a := newAccount(t)
	_, target := a.newModel(t, "go-push")
	path := randomFile(t, 5<<20+123)
	want := cliChecksum(t, path)

	var calls, last, total uint64
	pushed, err := a.client.PushFile(withTimeout(t, time.Minute), target, path, func(sent, size uint64) {
		if sent < last {
			t.Errorf("progress went backwards: %d after %d", sent, last)
		}
		calls, last, total = calls+1, sent, size
	})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if pushed.Checksum.String() != want || pushed.Bytes != 5<<20+123 {
		t.Fatalf("pushed %+v, want checksum %s", pushed, want)
	}
	if calls == 0 || last != total || total != pushed.Bytes {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}

	// Streamed back through the io.ReadCloser.
	d, err := a.client.Retrieve(withTimeout(t, time.Minute), target)
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	if d.ContentLength() != int64(pushed.Bytes) {
		t.Errorf("content length %d, want %d", d.ContentLength(), pushed.Bytes)
	}
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	original, _ := os.ReadFile(path)
	if !bytes.Equal(got, original) {
		t.Fatalf("retrieved %d bytes that differ from the %d pushed", len(got), len(original))
	}
	if sum, err := d.Checksum(); err != nil || sum != pushed.Checksum {
		t.Fatalf("download checksum %v, %v; pushed %v", sum, err, pushed.Checksum)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(make([]byte, 10)); !errors.Is(err, norman.ErrState) {
		t.Fatalf("read after close: %v, want ErrState", err)
	}

	// io.Copy into a writer goes through WriteTo.
	d2, err := a.client.Retrieve(withTimeout(t, time.Minute), target)
	if err != nil {
		t.Fatal(err)
	}
	var copied bytes.Buffer
	if n, err := io.Copy(&copied, d2); err != nil || n != int64(len(original)) || !bytes.Equal(copied.Bytes(), original) {
		t.Fatalf("io.Copy from a download: %d bytes, %v", n, err)
	}
	d2.Close()

	// And into a file.
	out := filepath.Join(t.TempDir(), "back.bin")
	back, err := a.client.RetrieveFile(withTimeout(t, time.Minute), target, out)
	if err != nil || back != pushed {
		t.Fatalf("retrieve file: %+v, %v; pushed %+v", back, err, pushed)
	}
	if cliChecksum(t, out) != want {
		t.Fatal("the retrieved file's checksum differs")
	}
}

func TestStreamingUploadIsAWriteCloser(t *testing.T) {
	a := newAccount(t)
	_, target := a.newModel(t, "go-stream")
	path := randomFile(t, 3<<20+5)
	want := cliChecksum(t, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()

	upload, err := a.client.BeginUpload(withTimeout(t, time.Minute), target, info.Size())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	var w io.WriteCloser = upload
	if _, err := io.Copy(w, f); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if upload.BytesWritten() != uint64(info.Size()) {
		t.Errorf("bytes written %d, want %d", upload.BytesWritten(), info.Size())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if upload.Checksum().String() != want {
		t.Fatalf("checksum %v, norman checksum says %s", upload.Checksum(), want)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := upload.Write([]byte("more")); !errors.Is(err, norman.ErrState) {
		t.Fatalf("write after close: %v, want ErrState", err)
	}

	// The backend kept it: retrieving gives the same checksum.
	d, err := a.client.Retrieve(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, err := norman.Checksum(d)
	if err != nil || got.String() != want {
		t.Fatalf("retrieved checksum %v, %v; want %s", got, err, want)
	}
}

func TestUploadOnAPairingTheCallerAllocated(t *testing.T) {
	a := newAccount(t)
	model, target := a.newModel(t, "go-pairing")
	data := make([]byte, 1<<20)
	rand.Read(data)
	ctx := withTimeout(t, time.Minute)
	pairing, err := a.client.PairAssetSocket(ctx, norman.SocketAssetPairingRequest{
		AccountID: a.id, ModelID: model.ID, AssetID: target.ID, FileSizeInBytes: int64(len(data))})
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	for _, printed := range []string{fmt.Sprintf("%v", pairing), fmt.Sprintf("%+v", pairing), fmt.Sprintf("%#v", pairing)} {
		for _, secret := range []norman.Secret{pairing.EncryptionKey, pairing.Nonce, pairing.AuthenticationHeader} {
			if bytes.Contains([]byte(printed), []byte(secret)) {
				t.Fatalf("a pairing secret is printed: %s", printed)
			}
		}
	}
	upload, err := a.client.OpenUpload(ctx, pairing)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	for i := 0; i < len(data); i += 10000 {
		end := i + 10000
		if end > len(data) {
			end = len(data)
		}
		if _, err := upload.Write(data[i:end]); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	sum, err := upload.Finish()
	if err != nil || sum != norman.ChecksumBytes(data) {
		t.Fatalf("finish: %v, %v", sum, err)
	}
	if err := a.client.CompleteUpload(ctx, pairing.PairingID, sum+1); !errors.Is(err, norman.ErrHTTPStatus) {
		t.Fatalf("completing with a wrong checksum: %v, want an HTTP error", err)
	}
}

func TestCancellingTheContextAbortsAnUpload(t *testing.T) {
	a := newAccount(t)
	_, target := a.newModel(t, "go-cancel")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upload, err := a.client.BeginUpload(ctx, target, 1<<40) // far more than will be written
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	chunk := make([]byte, 64<<10)
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	var werr error
	for start := time.Now(); time.Since(start) < 30*time.Second; {
		if _, werr = upload.Write(chunk); werr != nil {
			break
		}
	}
	if !errors.Is(werr, context.Canceled) || !errors.Is(werr, norman.ErrCancelled) {
		t.Fatalf("write after cancel: %v, want context.Canceled and ErrCancelled", werr)
	}
	if _, err := upload.Finish(); !errors.Is(err, context.Canceled) {
		t.Fatalf("finish after cancel: %v", err)
	}
	// The backend kept nothing.
	if _, err := a.client.Retrieve(context.Background(), target); !errors.Is(err, norman.ErrNotFound) {
		t.Fatalf("retrieve after an aborted upload: %v, want ErrNotFound", err)
	}
}

func TestCancellingAPushFile(t *testing.T) {
	a := newAccount(t)
	_, target := a.newModel(t, "go-cancel-push")
	path := randomFile(t, 32<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := a.client.PushFile(ctx, target, path, func(sent, total uint64) {
		cancel() // from the first progress report on
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, norman.ErrCancelled) {
		t.Fatalf("push after cancel: %v", err)
	}
	if _, err := a.client.Retrieve(context.Background(), target); !errors.Is(err, norman.ErrNotFound) {
		t.Fatalf("retrieve after a cancelled push: %v, want ErrNotFound", err)
	}
	// A context that ended before the call fails it at once.
	if _, err := a.client.PushFile(ctx, target, path, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("push with an ended context: %v", err)
	}
	deadline, stop := context.WithTimeout(context.Background(), time.Nanosecond)
	defer stop()
	time.Sleep(time.Millisecond)
	if _, err := a.client.Retrieve(deadline, target); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, norman.ErrTimeout) {
		t.Fatalf("retrieve past its deadline: %v", err)
	}
}

func TestManyGoroutinesUploadAtOnce(t *testing.T) {
	a := newAccount(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		_, target := a.newModel(t, fmt.Sprintf("go-parallel-%d", i))
		data := make([]byte, 1<<20+i*4099)
		rand.Read(data)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx := context.Background()
			upload, err := a.client.BeginUpload(ctx, target, int64(len(data)))
			if err != nil {
				errs <- fmt.Errorf("%d: begin: %w", i, err)
				return
			}
			if _, err := io.Copy(upload, bytes.NewReader(data)); err != nil {
				errs <- fmt.Errorf("%d: copy: %w", i, err)
				return
			}
			if err := upload.Close(); err != nil {
				errs <- fmt.Errorf("%d: close: %w", i, err)
				return
			}
			d, err := a.client.Retrieve(ctx, target)
			if err != nil {
				errs <- fmt.Errorf("%d: retrieve: %w", i, err)
				return
			}
			defer d.Close()
			back, err := io.ReadAll(d)
			if err != nil || !bytes.Equal(back, data) || upload.Checksum() != norman.ChecksumBytes(data) {
				errs <- fmt.Errorf("%d: round trip differs (%v)", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
