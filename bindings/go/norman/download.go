package norman

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"io"
	"runtime"
	"sync"
	"unsafe"
)

// Download is a file being retrieved: an io.ReadCloser that hashes what it hands out. After Read
// returned io.EOF, Checksum is the xxh3-64 of the whole file. One goroutine reads at a time.
type Download struct {
	mu   sync.Mutex // guards ptr against free while the context watcher cancels
	ptr  *C.norman_download
	ctx  context.Context
	stop chan struct{}
	err  error
	eof  bool
}

// Retrieve starts downloading target (`GET retrieve/asset|input|output/...`) and returns once the
// server answered (ErrNotFound when there is no such file). ctx bounds the whole download.
func (c *Client) Retrieve(ctx context.Context, target Target) (*Download, error) {
	const op = "retrieve"
	if err := checkTarget(op, target); err != nil {
		return nil, err
	}
	ptr, err := openWithin(ctx, op, func() (*C.norman_download, error) {
		// Allocated here, in the goroutine that opens: a caller whose ctx ended may be gone by now.
		t := allocCTarget(target)
		defer t.free()
		var ptr *C.norman_download
		err := c.with(op, func(client *C.norman_client) error {
			return call(op, func() C.enum_norman_result { return C.norman_client_retrieve_open(client, t.ptr(), &ptr) })
		})
		return ptr, err
	}, func(ptr *C.norman_download) { C.norman_download_free(ptr) })
	if err != nil {
		return nil, err
	}
	d := &Download{ptr: ptr, ctx: ctx, stop: make(chan struct{})}
	if ctx.Done() != nil {
		go d.watch()
	}
	runtime.SetFinalizer(d, (*Download).free)
	return d, nil
}

func (d *Download) watch() {
	select {
	case <-d.ctx.Done():
		d.mu.Lock()
		if d.ptr != nil {
			C.norman_download_cancel(d.ptr)
		}
		d.mu.Unlock()
	case <-d.stop:
	}
}

// Read copies the next bytes of the file into p; io.EOF at the end.
func (d *Download) Read(p []byte) (int, error) {
	const op = "download read"
	if d.err != nil {
		return 0, d.err
	}
	if d.ptr == nil {
		return 0, newError(ErrState, op, "the download is closed")
	}
	if d.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n C.size_t
	err := call(op, func() C.enum_norman_result {
		return C.norman_download_read(d.ptr, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)), &n)
	})
	runtime.KeepAlive(d)
	if err != nil {
		if e := err.(*Error); e.Code == ErrCancelled && d.ctx.Err() != nil {
			err = contextError(op, d.ctx.Err())
		}
		d.err = err
		return 0, err
	}
	if n == 0 {
		d.eof = true
		return 0, io.EOF
	}
	return int(n), nil
}

// WriteTo copies the rest of the download to w in 1 MiB reads (io.Copy uses it).
func (d *Download) WriteTo(w io.Writer) (int64, error) {
	return copyThrough(d.Read, w.Write)
}

// ContentLength is the length the server announced, or -1.
func (d *Download) ContentLength() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ptr == nil {
		return -1
	}
	n := uint64(C.norman_download_content_length(d.ptr))
	if n == ^uint64(0) {
		return -1
	}
	return int64(n)
}

// Checksum is the xxh3-64 of the bytes read so far: of the whole file once Read returned io.EOF.
func (d *Download) Checksum() (Digest, error) {
	var sum C.uint64_t
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ptr == nil {
		return 0, newError(ErrState, "download checksum", "the download is closed")
	}
	err := call("download checksum", func() C.enum_norman_result { return C.norman_download_checksum(d.ptr, &sum) })
	return Digest(sum), err
}

// Close frees the download, closing its connection if unfinished.
func (d *Download) Close() error {
	d.free()
	return nil
}

func (d *Download) free() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ptr != nil {
		C.norman_download_free(d.ptr)
		d.ptr = nil
		close(d.stop)
		runtime.SetFinalizer(d, nil)
	}
}

// RetrieveFile downloads target into the file at path (created or truncated; removed again on
// failure) and returns its size and checksum.
func (c *Client) RetrieveFile(ctx context.Context, target Target, path string) (Transfer, error) {
	const op = "retrieve file"
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
	out, err := c.await(ctx, op, nil, func(client *C.norman_client, h C.uintptr_t, opID *C.uint64_t) C.enum_norman_result {
		return C.go_retrieve_file_async(client, t.ptr(), cpath, h, opID)
	})
	if err != nil {
		return Transfer{}, err
	}
	return Transfer{Bytes: out.bytes, Checksum: Digest(out.checksum)}, nil
}
