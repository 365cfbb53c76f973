package norman

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"
)

// TargetKind says what a Target names.
type TargetKind int32

const (
	// TargetAsset is a model asset (uploads and downloads).
	TargetAsset TargetKind = C.NORMAN_TARGET_ASSET
	// TargetInput is an invocation input (uploads and downloads).
	TargetInput TargetKind = C.NORMAN_TARGET_INPUT
	// TargetOutput is an invocation output (downloads only).
	TargetOutput TargetKind = C.NORMAN_TARGET_OUTPUT
)

// Target is the file an upload or a download is for.
type Target struct {
	Kind      TargetKind
	AccountID string
	ModelID   string
	// InvocationID of an input or output; empty for an asset.
	InvocationID string
	// ID of the asset, input or output.
	ID string
}

// AssetTarget names the asset assetID of a model.
func AssetTarget(accountID, modelID, assetID string) Target {
	return Target{Kind: TargetAsset, AccountID: accountID, ModelID: modelID, ID: assetID}
}

// InputTarget names the input inputID of an invocation.
func InputTarget(accountID, modelID, invocationID, inputID string) Target {
	return Target{Kind: TargetInput, AccountID: accountID, ModelID: modelID, InvocationID: invocationID, ID: inputID}
}

// OutputTarget names the output outputID of an invocation.
func OutputTarget(accountID, modelID, invocationID, outputID string) Target {
	return Target{Kind: TargetOutput, AccountID: accountID, ModelID: modelID, InvocationID: invocationID, ID: outputID}
}

// cTarget is a Target in C memory for the duration of one call (cgo lets C see no Go memory that
// holds pointers, so the struct and its strings are all allocated by C).
type cTarget struct {
	c *C.norman_target
}

func newCTarget(op string, t Target) (*cTarget, error) {
	if err := checkTarget(op, t); err != nil {
		return nil, err
	}
	return allocCTarget(t), nil
}

// checkTarget refuses a target whose strings C would cut short.
func checkTarget(op string, t Target) error {
	for name, s := range map[string]string{"account id": t.AccountID, "model id": t.ModelID,
		"invocation id": t.InvocationID, "id": t.ID} {
		if err := checkCString(op, "target "+name, s); err != nil {
			return err
		}
	}
	return nil
}

// allocCTarget copies a checked target into C memory.
func allocCTarget(t Target) *cTarget {
	c := (*C.norman_target)(C.calloc(1, C.size_t(unsafe.Sizeof(C.norman_target{}))))
	c.kind = C.int32_t(t.Kind)
	c.account_id = C.CString(t.AccountID)
	c.model_id = C.CString(t.ModelID)
	c.invocation_id = C.CString(t.InvocationID)
	c.id = C.CString(t.ID)
	return &cTarget{c}
}

func (t *cTarget) ptr() *C.norman_target { return t.c }

func (t *cTarget) free() {
	for _, s := range []*C.char{t.c.account_id, t.c.model_id, t.c.invocation_id, t.c.id} {
		C.free(unsafe.Pointer(s))
	}
	C.free(unsafe.Pointer(t.c))
}

// Pairing is an upload socket as `file-push/socket/pair/asset|input` returns it. The key, nonce and
// header are base64 secrets: Pairing never prints them.
type Pairing struct {
	PairingID            string `json:"pairing_id"`
	Host                 string `json:"host"`
	Port                 int    `json:"port"`
	EncryptionKey        Secret `json:"encryption_key"`
	Nonce                Secret `json:"nonce"`
	AuthenticationHeader Secret `json:"authentication_header"`
}

// Transfer is what a whole-file push or retrieve moved.
type Transfer struct {
	Bytes    uint64
	Checksum Digest
}

// Upload is one streaming upload: an io.WriteCloser whose bytes are hashed and encrypted straight
// into the socket's send buffer. Finish (or Close) ends it and gives the checksum. An Upload is used
// by one goroutine at a time; Abort may be called from any goroutine. Always Finish or Close it: the
// goroutine that watches its context keeps it reachable (and its connection open) until then, or
// until the context ends, so the finalizer cannot step in earlier.
type Upload struct {
	// mu guards ptr against free while an abort (from the context watcher or Abort) uses it.
	mu       sync.Mutex
	ptr      *C.norman_upload
	ctx      context.Context
	stop     chan struct{} // closed when the upload is freed: ends the context watcher
	finished bool
	checksum Digest
	err      error // the first failure: every later call returns it
}

// OpenUpload opens an upload stream on a pairing the caller got from the backend. Finish returns
// the checksum; completing the transfer (`file-push/socket/complete`) is then the caller's job
// (see CompleteUpload). ctx bounds the whole upload: when it ends, the upload is aborted.
func (c *Client) OpenUpload(ctx context.Context, pairing Pairing) (*Upload, error) {
	const op = "open upload"
	for name, s := range map[string]string{"pairing_id": pairing.PairingID, "host": pairing.Host,
		"encryption_key": string(pairing.EncryptionKey), "nonce": string(pairing.Nonce),
		"authentication_header": string(pairing.AuthenticationHeader)} {
		if err := checkCString(op, name, s); err != nil {
			return nil, err
		}
	}
	return c.openUpload(ctx, op, func(client *C.norman_client, out **C.norman_upload) C.enum_norman_result {
		p := (*C.norman_pairing)(C.calloc(1, C.size_t(unsafe.Sizeof(C.norman_pairing{}))))
		defer C.free(unsafe.Pointer(p))
		p.port = C.int64_t(pairing.Port)
		fields := []**C.char{&p.pairing_id, &p.host, &p.encryption_key, &p.nonce, &p.authentication_header}
		values := []string{pairing.PairingID, pairing.Host, string(pairing.EncryptionKey), string(pairing.Nonce),
			string(pairing.AuthenticationHeader)}
		for i, field := range fields {
			*field = C.CString(values[i])
			defer C.free(unsafe.Pointer(*field))
		}
		return C.norman_upload_open(client, p, out)
	})
}

// BeginUpload allocates an upload socket for target and a file of size bytes and opens the stream
// on it; Finish then also completes the transfer with the backend, which checks size and checksum.
// ctx bounds the whole upload: when it ends, the upload is aborted.
func (c *Client) BeginUpload(ctx context.Context, target Target, size int64) (*Upload, error) {
	const op = "begin upload"
	if size < 0 {
		return nil, newError(ErrInvalidArgument, op, fmt.Sprintf("size %d is negative", size))
	}
	if err := checkTarget(op, target); err != nil {
		return nil, err
	}
	return c.openUpload(ctx, op, func(client *C.norman_client, out **C.norman_upload) C.enum_norman_result {
		// Allocated here, in the goroutine that opens: a caller whose ctx ended may be gone by now.
		t := allocCTarget(target)
		defer t.free()
		return C.norman_client_upload_begin(client, t.ptr(), C.uint64_t(size), out)
	})
}

func (c *Client) openUpload(ctx context.Context, op string,
	open func(*C.norman_client, **C.norman_upload) C.enum_norman_result) (*Upload, error) {
	ptr, err := openWithin(ctx, op, func() (*C.norman_upload, error) {
		var ptr *C.norman_upload
		err := c.with(op, func(client *C.norman_client) error {
			return call(op, func() C.enum_norman_result { return open(client, &ptr) })
		})
		return ptr, err
	}, func(ptr *C.norman_upload) { C.norman_upload_free(ptr) })
	if err != nil {
		return nil, err
	}
	u := &Upload{ptr: ptr, ctx: ctx, stop: make(chan struct{})}
	if ctx.Done() != nil {
		go u.watch()
	}
	runtime.SetFinalizer(u, (*Upload).free)
	return u, nil
}

// watch aborts the upload when its context ends first.
func (u *Upload) watch() {
	select {
	case <-u.ctx.Done():
		u.abort()
	case <-u.stop:
	}
}

func (u *Upload) abort() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ptr != nil {
		C.norman_upload_abort(u.ptr)
	}
}

// Write sends p: hashed and encrypted into the send buffer, handed to the socket chunk by chunk.
// It blocks while the receiver is slower. After a failure the upload is dead: the receiver sees a
// reset, never a short file, and every later call returns the same error.
func (u *Upload) Write(p []byte) (int, error) {
	const op = "upload write"
	if u.err != nil {
		return 0, u.err
	}
	if u.ptr == nil || u.finished {
		return 0, newError(ErrState, op, "the upload is finished")
	}
	if len(p) == 0 {
		return 0, nil
	}
	err := call(op, func() C.enum_norman_result {
		return C.norman_upload_write(u.ptr, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)))
	})
	runtime.KeepAlive(u)
	if err != nil {
		return 0, u.fail(err)
	}
	return len(p), nil
}

// ReadFrom copies r to the upload in 1 MiB reads (io.Copy uses it instead of its 32 KiB buffer),
// stopping at io.EOF; the upload stays open for Finish.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	return copyThrough(r.Read, u.Write)
}

// fail records the first failure; a cancellation caused by the context reports the context's error.
func (u *Upload) fail(err error) error {
	if e, ok := err.(*Error); ok && e.Code == ErrCancelled && u.ctx.Err() != nil {
		err = contextError(e.Op, u.ctx.Err())
	}
	u.err = err
	return err
}

// Finish sends what is buffered, ends the stream and returns the xxh3-64 checksum of the bytes
// written; an upload from BeginUpload is also completed with the backend. The upload is freed.
func (u *Upload) Finish() (Digest, error) {
	const op = "upload finish"
	if u.err != nil {
		return 0, u.err
	}
	if u.finished {
		return u.checksum, nil
	}
	if u.ptr == nil {
		return 0, newError(ErrState, op, "the upload was aborted")
	}
	var sum C.uint64_t
	err := call(op, func() C.enum_norman_result { return C.norman_upload_finish(u.ptr, &sum) })
	u.free()
	if err != nil {
		return 0, u.fail(err)
	}
	u.finished = true
	u.checksum = Digest(sum)
	return u.checksum, nil
}

// Close is Finish for io.WriteCloser: the checksum is then in Checksum. Closing again returns the
// first result.
func (u *Upload) Close() error {
	_, err := u.Finish()
	return err
}

// Checksum is the xxh3-64 of the file once Finish or Close succeeded (0 before).
func (u *Upload) Checksum() Digest { return u.checksum }

// BytesWritten is how many bytes Write accepted so far.
func (u *Upload) BytesWritten() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ptr == nil {
		return 0
	}
	return uint64(C.norman_upload_bytes_written(u.ptr))
}

// Abort abandons the upload from any goroutine: a blocked Write returns ErrCancelled, the receiver
// keeps nothing. Aborting a finished upload does nothing.
func (u *Upload) Abort() {
	u.abort()
}

// free releases the C upload (aborting it if unfinished) and stops the context watcher.
func (u *Upload) free() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ptr != nil {
		C.norman_upload_free(u.ptr)
		u.ptr = nil
		close(u.stop)
		runtime.SetFinalizer(u, nil)
	}
}

// PushFile uploads the file at path for target in one call: allocate a socket, stream the file
// (read straight into the send buffer), complete the transfer. progress (may be nil) is told the
// bytes sent and the total after each chunk, on the client's callback goroutine: keep it short.
func (c *Client) PushFile(ctx context.Context, target Target, path string, progress func(sent, total uint64)) (Transfer, error) {
	const op = "push file"
	cpath, freePath, err := cString(op, "path", path)
	if err != nil {
		return Transfer{}, err
	}
	defer freePath()
	t, err := newCTarget(op, target)
	if err != nil {
		return Transfer{}, err
	}
	defer t.free()
	withProgress := C.int(0)
	if progress != nil {
		withProgress = 1
	}
	out, err := c.await(ctx, op, progress, func(client *C.norman_client, h C.uintptr_t, opID *C.uint64_t) C.enum_norman_result {
		return C.go_push_file_async(client, t.ptr(), cpath, withProgress, h, opID)
	})
	if err != nil {
		return Transfer{}, err
	}
	return Transfer{Bytes: out.bytes, Checksum: Digest(out.checksum)}, nil
}
