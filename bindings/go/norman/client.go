// Package norman is the Go binding of libnorman, the Norman Core SDK: encrypted, checksummed uploads
// of model assets and invocation inputs, downloads, and every route of the Norman API, over the C
// library through cgo.
//
// The C library is found through pkg-config (norman.pc, which `make install` writes): its Cflags
// name the folder of norman.h, its Libs link libnorman and set an rpath to its libdir, so programs
// run without LD_LIBRARY_PATH. Set PKG_CONFIG_PATH to PREFIX/lib/pkgconfig for a prefix pkg-config
// does not search (scripts/test-go.sh points it at a norman.pc for the repository's own build).
package norman

/*
#cgo pkg-config: norman
#include <stdlib.h>
#include "norman.h"
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ABIVersion is the C ABI version this package was written for; NewClient refuses a library built
// for another one.
const ABIVersion = 1

// Version is the version of the linked libnorman ("0.1.0").
func Version() string { return C.GoString(C.norman_version()) }

// Secret is a string that never prints: fmt shows "<redacted>" for every verb that formats it as a
// value, so a Config can be logged.
type Secret string

func (Secret) String() string   { return "<redacted>" }
func (Secret) GoString() string { return `"<redacted>"` }

// Config says how a Client talks to Norman. Zero fields take libnorman's defaults (those of the
// Python SDK): 10 s timeout, 3 retries, 64 KiB chunks, 8 MiB flush size, one worker per core (at
// most 8).
type Config struct {
	// BaseURL of the API, ending in the version, e.g. "http://127.0.0.1:8080/v0/".
	BaseURL string
	// Token is the bearer token sent with every request (a secret: never logged).
	Token Secret
	// Timeout of a request, a connect, and any socket wait without progress.
	Timeout time.Duration
	// Retries of idempotent requests on connect errors and 502/503/504; negative disables them.
	Retries int
	// ChunkSize is the unit of hashing, encryption and socket writes of an upload.
	ChunkSize int
	// FlushSize is the most bytes an upload queues ahead of the socket (at least ChunkSize).
	FlushSize int
	// WorkerThreads of the client's runtime.
	WorkerThreads int
	// CipherThreads that encrypt one upload (0: one per core, or NORMAN_CIPHER_THREADS with
	// FromEnvironment; 1: a single thread; at most 64).
	CipherThreads int
	// FromEnvironment starts from NORMAN_BASE_URL, NORMAN_TOKEN, NORMAN_TIMEOUT_SECS,
	// NORMAN_CHUNK_SIZE, NORMAN_FLUSH_SIZE and NORMAN_RETRIES; the non-zero fields above win.
	FromEnvironment bool
}

// Client talks to one Norman backend. It is safe for concurrent use by many goroutines. Close it
// when done; a forgotten Client is closed by a finalizer.
type Client struct {
	// mu guards ptr: calls hold it shared while they use the C handle, Close exclusively.
	mu    sync.RWMutex
	ptr   *C.norman_client
	token atomic.Value // Secret: kept only to scrub it from error messages a server might echo
	// timeout bounds the waits of messaging calls whose context has no deadline (connects).
	timeout time.Duration
	// closing refuses new calls once Close started; children are the messaging and BSON handles
	// made from the client, which the C API needs closed before the client is freed.
	closing  atomic.Bool
	children sync.Map // io.Closer -> struct{}
}

// NewClient validates cfg and starts a client (its runtime threads and callback thread).
func NewClient(cfg Config) (*Client, error) {
	if abi := uint32(C.norman_abi_version()); abi != ABIVersion {
		return nil, newError(ErrInternal, "new client",
			fmt.Sprintf("libnorman has ABI version %d, this package needs %d", abi, ABIVersion))
	}
	var config *C.norman_config
	var err error
	if cfg.FromEnvironment {
		err = call("config from environment", func() C.enum_norman_result { return C.norman_config_from_env(&config) })
	} else {
		err = call("new config", func() C.enum_norman_result { return C.norman_config_new(&config) })
	}
	if err != nil {
		return nil, err
	}
	defer C.norman_config_free(config)
	if err := applyConfig(config, cfg); err != nil {
		return nil, err
	}
	c := &Client{timeout: cfg.Timeout}
	if c.timeout == 0 {
		c.timeout = 10 * time.Second // the library's default
	}
	c.token.Store(cfg.Token)
	if err := call("new client", func() C.enum_norman_result { return C.norman_client_new(config, &c.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(c, (*Client).Close)
	return c, nil
}

func applyConfig(config *C.norman_config, cfg Config) error {
	if cfg.Timeout < 0 || (cfg.Timeout > 0 && cfg.Timeout < time.Millisecond) {
		return newError(ErrInvalidConfig, "config", fmt.Sprintf("timeout %v: must be at least 1ms", cfg.Timeout))
	}
	for _, size := range []struct {
		name  string
		value int
	}{{"chunk size", cfg.ChunkSize}, {"flush size", cfg.FlushSize}, {"worker threads", cfg.WorkerThreads}, {"cipher threads", cfg.CipherThreads}} {
		if size.value < 0 {
			return newError(ErrInvalidConfig, "config", fmt.Sprintf("%s %d: must not be negative", size.name, size.value))
		}
	}
	set := func(name string, f func() C.enum_norman_result) error { return call("config "+name, f) }
	setString := func(name, value string, f func(*C.char) C.enum_norman_result) error {
		if value == "" {
			return nil
		}
		s, free, err := cString("config", name, value)
		if err != nil {
			return err
		}
		defer free()
		return set(name, func() C.enum_norman_result { return f(s) })
	}
	setSize := func(name string, value int, f func(C.size_t) C.enum_norman_result) error {
		if value == 0 {
			return nil
		}
		return set(name, func() C.enum_norman_result { return f(C.size_t(value)) })
	}
	if err := setString("base URL", cfg.BaseURL, func(s *C.char) C.enum_norman_result {
		return C.norman_config_set_base_url(config, s)
	}); err != nil {
		return err
	}
	if err := setString("token", string(cfg.Token), func(s *C.char) C.enum_norman_result {
		return C.norman_config_set_token(config, s)
	}); err != nil {
		return err
	}
	if cfg.Timeout > 0 {
		ms := C.uint64_t(cfg.Timeout / time.Millisecond)
		if err := set("timeout", func() C.enum_norman_result { return C.norman_config_set_timeout_ms(config, ms) }); err != nil {
			return err
		}
	}
	if cfg.Retries != 0 {
		retries := C.uint32_t(0) // negative: none
		if cfg.Retries > 0 {
			retries = C.uint32_t(cfg.Retries)
		}
		if err := set("retries", func() C.enum_norman_result { return C.norman_config_set_retries(config, retries) }); err != nil {
			return err
		}
	}
	if err := setSize("chunk size", cfg.ChunkSize, func(n C.size_t) C.enum_norman_result {
		return C.norman_config_set_chunk_size(config, n)
	}); err != nil {
		return err
	}
	if err := setSize("flush size", cfg.FlushSize, func(n C.size_t) C.enum_norman_result {
		return C.norman_config_set_flush_size(config, n)
	}); err != nil {
		return err
	}
	if err := setSize("worker threads", cfg.WorkerThreads, func(n C.size_t) C.enum_norman_result {
		return C.norman_config_set_worker_threads(config, n)
	}); err != nil {
		return err
	}
	return setSize("cipher threads", cfg.CipherThreads, func(n C.size_t) C.enum_norman_result {
		return C.norman_config_set_cipher_threads(config, n)
	})
}

// Close cancels every running operation of the client (each returns ErrCancelled), stops its
// threads and frees it. Uploads and downloads opened from it fail afterwards. Close is idempotent.
func (c *Client) Close() error {
	c.closing.Store(true)
	// First end the calls other goroutines are blocked in (they hold mu shared until they return).
	c.mu.RLock()
	if c.ptr != nil {
		C.norman_client_close(c.ptr)
	}
	c.mu.RUnlock()
	for {
		// Servers, connections and nodes go first (the C API frees them before their client). A
		// child made by a call that was under way when closing was set may appear meanwhile: go
		// round again, never closing one under mu (its calls may be waiting for mu shared).
		c.children.Range(func(child, _ any) bool {
			child.(io.Closer).Close()
			return true
		})
		c.mu.Lock()
		if !c.hasChildren() {
			break
		}
		c.mu.Unlock()
	}
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.norman_client_free(c.ptr)
		c.ptr = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

func (c *Client) hasChildren() bool {
	found := false
	c.children.Range(func(any, any) bool { found = true; return false })
	return found
}

// adopt records a handle made from the client (under with), so that Close closes it first.
func (c *Client) adopt(child io.Closer) { c.children.Store(child, struct{}{}) }

// release forgets a closed child.
func (c *Client) release(child io.Closer) {
	if c != nil {
		c.children.Delete(child)
	}
}

// SetToken replaces the bearer token (empty removes it); running operations keep theirs.
func (c *Client) SetToken(token Secret) error {
	return c.with("set token", func(ptr *C.norman_client) error {
		s, free, err := cString("set token", "token", string(token))
		if err != nil {
			return err
		}
		defer free()
		if err := call("set token", func() C.enum_norman_result { return C.norman_client_set_token(ptr, s) }); err != nil {
			return err
		}
		c.token.Store(token) // SetToken and scrub may run at once: both hold mu only shared
		return nil
	})
}

// with runs f with the C handle while holding the client open.
func (c *Client) with(op string, f func(*C.norman_client) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil || c.closing.Load() {
		return newError(ErrClosed, op, "the client is closed")
	}
	return f(c.ptr)
}

// scrub removes the client's token from text a server sent back.
func (c *Client) scrub(text string) string {
	if token, _ := c.token.Load().(Secret); len(token) >= 8 {
		text = strings.ReplaceAll(text, string(token), "<redacted>")
	}
	return text
}

// closeThenFree ends a handle whose blocking calls hold mu shared: closeFn (which makes those calls
// return) runs under mu shared, then freeFn runs once under mu and *ptr becomes nil. It reports
// whether this call freed the handle (the caller then drops its finalizer).
func closeThenFree[T any](mu *sync.RWMutex, ptr **T, closeFn, freeFn func(*T)) bool {
	mu.RLock()
	if *ptr != nil {
		closeFn(*ptr)
	}
	mu.RUnlock()
	mu.Lock()
	defer mu.Unlock()
	if *ptr == nil {
		return false
	}
	freeFn(*ptr)
	*ptr = nil
	return true
}

// call runs one C call and turns a failure into an *Error carrying norman_last_error. The thread is
// locked so the message read is the one this call left (it is per thread).
func call(op string, f func() C.enum_norman_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := f()
	if rc == C.NORMAN_OK {
		return nil
	}
	return lastError(op, rc)
}

func lastError(op string, rc C.enum_norman_result) *Error {
	msg := ""
	if p := C.norman_last_error(); p != nil {
		msg = C.GoString(p)
	}
	if msg == "" {
		msg = C.GoString(C.norman_result_str(C.int32_t(rc)))
	}
	return newError(Code(rc), op, msg)
}

// cString copies s into C memory for one call, with the function that frees it; a string with a
// NUL byte is refused (C would see it cut short).
func cString(op, name, s string) (*C.char, func(), error) {
	if err := checkCString(op, name, s); err != nil {
		return nil, nil, err
	}
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }, nil
}

// checkCString refuses strings C would cut short at a NUL byte.
func checkCString(op, name, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return newError(ErrInvalidArgument, op, name+" contains a NUL byte")
	}
	return nil
}

// done reports whether ctx has ended, as the error a call returns.
func done(ctx context.Context, op string) error {
	if ctx == nil {
		return newError(ErrNullArgument, op, "nil context")
	}
	if err := ctx.Err(); err != nil {
		return contextError(op, err)
	}
	return nil
}
