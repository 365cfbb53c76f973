package norman

/*
#include <stdlib.h>
#include "norman.h"
*/
import "C"

import (
	"context"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// BSONOptions tunes DialBSON and ListenBSON; nil takes the defaults.
type BSONOptions struct {
	// MaxDocument is the largest document accepted, its length prefix included (0: 16 MiB). A
	// larger announced length is refused before anything is allocated (ErrOversize).
	MaxDocument int
}

func maxDoc(opts *BSONOptions) C.size_t {
	if opts == nil || opts.MaxDocument <= 0 {
		return 0
	}
	return C.size_t(opts.MaxDocument)
}

// BSONConn carries BSON documents over TCP, one per frame, as py-bson's sendobj/recvobj do. Read
// and Write may run at once from two goroutines. Close it when done.
type BSONConn struct {
	mu     sync.RWMutex // guards ptr as Conn.mu does
	ptr    *C.norman_bson_conn
	client *Client
}

// DialBSON connects to addr, within ctx's deadline (else the client's Timeout) or until ctx is
// cancelled.
func DialBSON(ctx context.Context, client *Client, addr string, opts *BSONOptions) (*BSONConn, error) {
	const op = "bson dial"
	if client == nil {
		return nil, newError(ErrNullArgument, op, "nil client")
	}
	if err := done(ctx, op); err != nil {
		return nil, err
	}
	timeout, ok := timeoutMS(ctx, client.timeout)
	if !ok {
		return nil, contextError(op, context.DeadlineExceeded)
	}
	if err := checkCString(op, "address", addr); err != nil {
		return nil, err
	}
	max := maxDoc(opts)
	c := &BSONConn{client: client}
	_, err := openWithin(ctx, op, func() (*BSONConn, error) {
		caddr, free, _ := cString(op, "address", addr)
		defer free()
		err := client.with(op, func(cp *C.norman_client) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if rc := C.norman_bson_connect(cp, caddr, max, timeout, &c.ptr); rc != C.NORMAN_OK {
				return deadlineError(ctx, op, lastError(op, rc))
			}
			client.adopt(c)
			return nil
		})
		return c, err
	}, func(c *BSONConn) { c.Close() })
	if err != nil {
		return nil, err
	}
	runtime.SetFinalizer(c, (*BSONConn).Close)
	return c, nil
}

// pollSlice bounds each wait of a cancellable Read or Accept, so a cancelled ctx ends it within
// about this long (a wait that times out with nothing read loses nothing).
const pollSlice = 100 * time.Millisecond

// waitSlice is the wait of one blocking call made for ctx: what is left of ctx's deadline (none:
// forever), cut to pollSlice when ctx can be cancelled (sliced), so a cancellation is seen between
// calls.
func waitSlice(ctx context.Context, op string) (timeout C.int32_t, sliced bool, err error) {
	if err := done(ctx, op); err != nil {
		return 0, false, err
	}
	timeout, ok := timeoutMS(ctx, 0)
	if !ok {
		return 0, false, contextError(op, context.DeadlineExceeded)
	}
	if ctx.Done() != nil && (timeout < 0 || timeout > C.int32_t(pollSlice/time.Millisecond)) {
		return C.int32_t(pollSlice / time.Millisecond), true, nil
	}
	return timeout, false, nil
}

// Read returns the next document: its exact bytes, length prefix included (a valid bson.Raw).
// At the clean end of the stream it returns an error matching both ErrClosed and io.EOF. Ends at
// ctx's deadline (ErrTimeout) or when ctx is cancelled.
func (c *BSONConn) Read(ctx context.Context) ([]byte, error) {
	const op = "bson read"
	for {
		timeout, sliced, err := waitSlice(ctx, op)
		if err != nil {
			return nil, err
		}
		doc, rc, err := c.recv(op, timeout)
		if rc == C.NORMAN_NO_EVENT || rc == C.NORMAN_ERROR_TIMEOUT {
			// Nothing, or part of a document, came in time: the next receive resumes it.
			if sliced {
				continue
			}
			return nil, contextError(op, context.DeadlineExceeded)
		}
		if rc == C.NORMAN_CLOSED {
			return nil, &Error{Code: ErrClosed, Op: op, Message: "the peer ended the stream", cause: io.EOF}
		}
		return doc, err
	}
}

func (c *BSONConn) recv(op string, timeout C.int32_t) ([]byte, C.enum_norman_result, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, C.NORMAN_OK, newError(ErrClosed, op, "the connection is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var d *C.norman_bson_doc
	rc := C.norman_bson_recv(c.ptr, timeout, &d)
	switch rc {
	case C.NORMAN_OK:
	case C.NORMAN_NO_EVENT, C.NORMAN_CLOSED, C.NORMAN_ERROR_TIMEOUT:
		return nil, rc, nil
	default:
		return nil, rc, lastError(op, rc)
	}
	defer C.norman_bson_doc_free(d)
	var p *C.uint8_t
	var n C.size_t
	if rc := C.norman_bson_doc_data(d, &p, &n); rc != C.NORMAN_OK {
		return nil, rc, lastError(op, rc)
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), rc, nil
}

// ReadExact reads exactly len(buf) bytes of the stream (py-bson's recvbytes): ErrTruncated when it
// ends first. Ends at ctx's deadline; a cancellation is seen before the read starts.
func (c *BSONConn) ReadExact(ctx context.Context, buf []byte) error {
	const op = "bson read exact"
	if err := done(ctx, op); err != nil {
		return err
	}
	timeout, ok := timeoutMS(ctx, 0)
	if !ok {
		return contextError(op, context.DeadlineExceeded)
	}
	p, n := bytesPtr(buf)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return newError(ErrClosed, op, "the connection is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if rc := C.norman_bson_recv_exact(c.ptr, p, n, timeout); rc != C.NORMAN_OK {
		return deadlineError(ctx, op, lastError(op, rc))
	}
	return nil
}

// Write sends one document (its exact bytes, as bson.Marshal or bson.Raw hold them). Anything but
// exactly one valid document is ErrInvalidBSON, and nothing is sent.
func (c *BSONConn) Write(doc []byte) error {
	const op = "bson write"
	p, n := bytesPtr(doc)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return newError(ErrClosed, op, "the connection is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if rc := C.norman_bson_send(c.ptr, p, n); rc != C.NORMAN_OK {
		return lastError(op, rc)
	}
	return nil
}

// WriteJSON sends the document a relaxed Extended JSON object describes.
func (c *BSONConn) WriteJSON(json string) error {
	const op = "bson write json"
	s, free, err := cString(op, "json", json)
	if err != nil {
		return err
	}
	defer free()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return newError(ErrClosed, op, "the connection is closed")
	}
	return call(op, func() C.enum_norman_result { return C.norman_bson_send_json(c.ptr, s) })
}

// Close closes the connection; waiting reads return. Idempotent.
func (c *BSONConn) Close() error {
	if closeThenFree(&c.mu, &c.ptr,
		func(p *C.norman_bson_conn) { C.norman_bson_conn_close(p) },
		func(p *C.norman_bson_conn) { C.norman_bson_conn_free(p) }) {
		runtime.SetFinalizer(c, nil)
	}
	c.client.release(c)
	return nil
}

// BSONListener accepts BSON connections.
type BSONListener struct {
	mu     sync.RWMutex
	ptr    *C.norman_bson_listener
	client *Client
	addr   string
}

// ListenBSON listens on addr ("127.0.0.1:0" picks a free port; Addr tells it).
func ListenBSON(client *Client, addr string, opts *BSONOptions) (*BSONListener, error) {
	const op = "bson listen"
	if client == nil {
		return nil, newError(ErrNullArgument, op, "nil client")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, newError(ErrInvalidArgument, op, err.Error())
	}
	caddr, free, err := cString(op, "address", addr)
	if err != nil {
		return nil, err
	}
	defer free()
	l := &BSONListener{client: client}
	if err := client.with(op, func(cp *C.norman_client) error {
		if err := call(op, func() C.enum_norman_result { return C.norman_bson_listen(cp, caddr, maxDoc(opts), &l.ptr) }); err != nil {
			return err
		}
		client.adopt(l)
		return nil
	}); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(l, (*BSONListener).Close)
	var port C.uint16_t
	if err := call(op, func() C.enum_norman_result { return C.norman_bson_listener_port(l.ptr, &port) }); err != nil {
		l.Close()
		return nil, err
	}
	l.addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
	return l, nil
}

// Addr is the address the listener accepts on.
func (l *BSONListener) Addr() string { return l.addr }

// Accept waits for the next connection, until ctx's deadline or its cancellation.
func (l *BSONListener) Accept(ctx context.Context) (*BSONConn, error) {
	const op = "bson accept"
	for {
		timeout, sliced, err := waitSlice(ctx, op)
		if err != nil {
			return nil, err
		}
		var p *C.norman_bson_conn
		var rc C.enum_norman_result
		err = func() error {
			l.mu.RLock()
			defer l.mu.RUnlock()
			if l.ptr == nil {
				return newError(ErrClosed, op, "the listener is closed")
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			rc = C.norman_bson_accept(l.ptr, timeout, &p)
			if rc != C.NORMAN_OK && rc != C.NORMAN_NO_EVENT {
				return lastError(op, rc)
			}
			return nil
		}()
		switch {
		case err != nil:
			return nil, err
		case rc == C.NORMAN_OK:
			return l.adoptAccepted(op, p)
		case !sliced:
			return nil, contextError(op, context.DeadlineExceeded)
		}
	}
}

func (l *BSONListener) adoptAccepted(op string, p *C.norman_bson_conn) (*BSONConn, error) {
	c := &BSONConn{ptr: p, client: l.client}
	if err := l.client.with(op, func(*C.norman_client) error { l.client.adopt(c); return nil }); err != nil {
		C.norman_bson_conn_free(p) // the client is closing: before it is freed
		return nil, err
	}
	runtime.SetFinalizer(c, (*BSONConn).Close)
	return c, nil
}

// Close stops accepting. Idempotent.
func (l *BSONListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr != nil {
		C.norman_bson_listener_free(l.ptr)
		l.ptr = nil
		runtime.SetFinalizer(l, nil)
	}
	l.client.release(l)
	return nil
}

// BSONToJSON is the relaxed Extended JSON of one document, keys in their order.
func BSONToJSON(doc []byte) (string, error) {
	const op = "bson to json"
	p, n := bytesPtr(doc)
	var js *C.char
	if err := call(op, func() C.enum_norman_result { return C.norman_bson_to_json(p, n, &js) }); err != nil {
		return "", err
	}
	defer C.norman_string_free(js)
	return C.GoString(js), nil
}

// BSONFromJSON is the document a relaxed Extended JSON object describes.
func BSONFromJSON(json string) ([]byte, error) {
	const op = "bson from json"
	s, free, err := cString(op, "json", json)
	if err != nil {
		return nil, err
	}
	defer free()
	var p *C.uint8_t
	var n C.size_t
	if err := call(op, func() C.enum_norman_result { return C.norman_bson_from_json(s, &p, &n) }); err != nil {
		return nil, err
	}
	defer C.norman_bytes_free(p, n)
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), nil
}
