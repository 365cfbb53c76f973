package norman

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// Conn is a messaging connection to a server (netaio's TCPClient): requests with replies matched
// by request id, one-way sends, and the messages the server sends on its own (notifications,
// broadcasts). It is safe for concurrent use. Close it when done.
type Conn struct {
	client *Client
	// mu guards ptr: calls hold it shared while they use the C handle, Close exclusively.
	mu        sync.RWMutex
	ptr       *C.norman_msg_conn
	closed    chan struct{}
	closeOnce sync.Once
	notesOnce sync.Once
	notes     chan *Message
	notesErr  atomic.Value // error: why the notifications ended, when not a clean close
}

// DialOptions tunes Dial; nil takes the defaults.
type DialOptions struct {
	// Layers seal every message of the connection (outermost); nil: none.
	Layers *Layers
}

// Dial connects to a messaging server at addr ("127.0.0.1:8888"). The connect ends at ctx's
// deadline (else the client's Timeout) or when ctx is cancelled.
func Dial(ctx context.Context, client *Client, addr string, opts *DialOptions) (*Conn, error) {
	const op = "msg dial"
	if client == nil {
		return nil, newError(ErrNullArgument, op, "nil client")
	}
	var outer *Layers
	if opts != nil {
		outer = opts.Layers
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
	c := &Conn{client: client, closed: make(chan struct{})}
	open := func() (*Conn, error) {
		caddr, free, _ := cString(op, "address", addr)
		defer free()
		err := client.with(op, func(cp *C.norman_client) error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			rc := C.norman_msg_connect(cp, caddr, outer.cptr(), timeout, &c.ptr)
			runtime.KeepAlive(outer)
			if rc != C.NORMAN_OK {
				return deadlineError(ctx, op, lastError(op, rc))
			}
			client.adopt(c) // under the client's lock: Client.Close sees it
			return nil
		})
		return c, err
	}
	if _, err := openWithin(ctx, op, open, (*Conn).free); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(c, (*Conn).Close)
	return c, nil
}

// free closes a connection Dial opened after its caller left.
func (c *Conn) free() { c.Close() }

// Request sends a message of type t and waits for its reply, until ctx's deadline or
// cancellation. A reply of type ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED is a *RemoteError
// (errors.Is(err, ErrMsgRemote)) carrying it. Options: WithLayers (inner layers for this message
// and its reply).
func (c *Conn) Request(ctx context.Context, t MsgType, uri string, content []byte, opts ...Option) (*Message, error) {
	const op = "msg request"
	if ctx == nil {
		return nil, newError(ErrNullArgument, op, "nil context")
	}
	if ctx.Done() == nil {
		// Nothing can cancel it: the blocking call (the fastest path), with the deadline if any.
		return c.requestBlocking(ctx, op, t, uri, content, innerOf(opts))
	}
	return c.requestAsync(ctx, op, t, uri, content, innerOf(opts))
}

func (c *Conn) requestBlocking(ctx context.Context, op string, t MsgType, uri string, content []byte, inner *Layers) (*Message, error) {
	timeout, ok := timeoutMS(ctx, 0)
	if !ok {
		return nil, contextError(op, context.DeadlineExceeded)
	}
	uptr, ulen := strPtr(uri)
	cptr, clen := bytesPtr(content)
	var v C.go_msg_view
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, newError(ErrClosed, op, "the connection is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := C.go_msg_conn_request(c.ptr, C.uint8_t(t), uptr, ulen, cptr, clen, inner.cptr(), timeout, &v)
	runtime.KeepAlive(inner)
	return replyOf(ctx, op, rc, &v)
}

func (c *Conn) requestAsync(ctx context.Context, op string, t MsgType, uri string, content []byte, inner *Layers) (*Message, error) {
	timeout, ok := timeoutMS(ctx, 0)
	if !ok {
		return nil, contextError(op, context.DeadlineExceeded)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, newError(ErrClosed, op, "the connection is closed")
	}
	out, err := c.client.await(ctx, op, nil, func(_ *C.norman_client, h C.uintptr_t, id *C.uint64_t) C.enum_norman_result {
		uptr, ulen := strPtr(uri)
		cptr, clen := bytesPtr(content)
		return C.go_msg_conn_request_async(c.ptr, C.uint8_t(t), uptr, ulen, cptr, clen, inner.cptr(), timeout, h, id)
	})
	runtime.KeepAlive(inner)
	if err == nil {
		return out.msg, nil
	}
	e, ok := err.(*Error)
	if !ok {
		return nil, err
	}
	if e.Code == ErrMsgRemote && out.msg != nil {
		return nil, &RemoteError{Reply: out.msg, err: e}
	}
	if e.cause != nil { // ended by ctx
		return nil, e
	}
	return nil, deadlineError(ctx, op, e)
}

// Send sends a message of type t without waiting for an answer (waiting only for room in the
// connection's queue). Options: WithLayers.
func (c *Conn) Send(t MsgType, uri string, content []byte, opts ...Option) error {
	const op = "msg send"
	inner := innerOf(opts)
	uptr, ulen := strPtr(uri)
	cptr, clen := bytesPtr(content)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return newError(ErrClosed, op, "the connection is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := C.norman_msg_conn_send(c.ptr, C.uint8_t(t), uptr, ulen, cptr, clen, inner.cptr())
	runtime.KeepAlive(inner)
	if rc != C.NORMAN_OK {
		return lastError(op, rc)
	}
	return nil
}

// Notifications returns the messages the server sends without being asked (NOTIFY_URI after a
// SUBSCRIBE_URI request, broadcasts), in order. The channel is closed when the connection closes
// (Close, or the server went away; Err then says why). Until the first call, such messages wait
// in the library's bounded queue.
func (c *Conn) Notifications() <-chan *Message {
	c.notesOnce.Do(func() {
		c.notes = make(chan *Message, 64)
		go c.pump()
	})
	return c.notes
}

// Err is why the notifications ended: nil while open, after Close, or after the server closed
// the connection cleanly.
func (c *Conn) Err() error {
	err, _ := c.notesErr.Load().(error)
	return err
}

func (c *Conn) pump() {
	defer close(c.notes)
	for {
		m, rc, err := c.next()
		switch {
		case rc == C.NORMAN_NO_EVENT:
			continue
		case rc == C.NORMAN_CLOSED:
			return
		case err != nil:
			c.notesErr.Store(err)
			return
		}
		select {
		case c.notes <- m:
		case <-c.closed:
			return
		}
	}
}

func (c *Conn) next() (*Message, C.enum_norman_result, error) {
	const op = "msg next"
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, C.NORMAN_CLOSED, nil
	}
	var v C.go_msg_view
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := C.go_msg_conn_next(c.ptr, -1, &v)
	m, err := replyOf(context.Background(), op, rc, &v)
	return m, rc, err
}

// Close closes the connection: calls waiting on it return ErrClosed and Notifications' channel
// closes. Idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	if closeThenFree(&c.mu, &c.ptr,
		func(p *C.norman_msg_conn) { C.norman_msg_conn_close(p) },
		func(p *C.norman_msg_conn) { C.norman_msg_conn_free(p) }) {
		runtime.SetFinalizer(c, nil)
	}
	c.client.release(c)
	return nil
}
