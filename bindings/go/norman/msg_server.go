package norman

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"runtime"
	"runtime/cgo"
	"strconv"
	"sync"
	"unsafe"
)

// HandlerFunc answers one message. Returning a reply sends it (uri and request id echoed); nil,
// nil sends nothing; an error sends an ERROR reply whose content is err.Error() (the peer sees
// that text), or the type and content of a ReplyError. ctx ends when the server or node closes.
// Handlers run each in its own goroutine, so they may block, call other servers, and run
// concurrently (replies are matched by request id, not by order).
type HandlerFunc func(ctx context.Context, call *Call) (*Reply, error)

// Call is one received message awaiting its answer. Its methods work until the handler returns.
type Call struct {
	Type    MsgType
	URI     string
	Content []byte
	// ConnID identifies the connection it came on (for a UDP node: 0).
	ConnID uint64
	mu     sync.Mutex
	ptr    *C.norman_msg_call // nil once answered
	msg    *C.norman_msg      // borrowed from ptr
}

// route is the Go side of one handler; a cgo.Handle to it is the C userdata, deleted by
// goNormanFree when the library drops the handler (replaced, Once, server freed).
type route struct {
	ctx context.Context
	fn  HandlerFunc
}

//export goNormanMsgCall
func goNormanMsgCall(userdata unsafe.Pointer, call *C.norman_msg_call) {
	r := cgo.Handle(uintptr(userdata)).Value().(*route)
	go r.serve(call) // the callback thread never waits on a handler
}

func (r *route) serve(cp *C.norman_msg_call) {
	var v C.go_msg_view
	if C.go_msg_call_view(cp, &v) != C.NORMAN_OK {
		C.norman_msg_call_free(cp)
		return
	}
	m := newMessage(&v)
	c := &Call{Type: m.Type, URI: m.URI, Content: m.Content, ConnID: uint64(C.norman_msg_call_conn_id(cp)),
		ptr: cp, msg: v.msg}
	reply, err := r.run(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ptr, c.msg = nil, nil
	var remote *RemoteError
	switch {
	case errors.As(err, &remote) && remote.Reply != nil:
		reply = &Reply{Type: remote.Reply.Type, Content: remote.Reply.Content}
	case err != nil:
		reply = &Reply{Type: MsgError, Content: []byte(err.Error())}
	case reply == nil:
		C.norman_msg_call_free(cp)
		return
	}
	content, n := bytesPtr(reply.Content)
	C.norman_msg_call_reply(cp, C.uint8_t(reply.Type), content, n) // consumes cp; a failure has no one to tell
}

// run calls the handler; a panic becomes an ERROR reply and a log line, as net/http does.
func (r *route) run(c *Call) (reply *Reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 16<<10)
			log.Printf("norman: handler of %s %q panicked: %v\n%s", c.Type, c.URI, p, buf[:runtime.Stack(buf, false)])
			reply, err = nil, errors.New("handler failed")
		}
	}()
	return r.fn(r.ctx, c)
}

func (c *Call) with(op string, f func(*C.norman_msg_call) C.enum_norman_result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return newError(ErrState, op, "the call was answered (its handler returned)")
	}
	return call(op, func() C.enum_norman_result { return f(c.ptr) })
}

// Peer is the sender's address ("127.0.0.1:40000").
func (c *Call) Peer() (string, error) {
	var buf [80]C.char
	err := c.with("call peer", func(p *C.norman_msg_call) C.enum_norman_result {
		return C.norman_msg_call_peer(p, &buf[0], C.size_t(len(buf)))
	})
	if err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// Subscribe adds the call's connection to uri's subscribers (Server.Notify reaches it).
func (c *Call) Subscribe(uri string) error {
	u, n := strPtr(uri)
	return c.with("call subscribe", func(p *C.norman_msg_call) C.enum_norman_result {
		return C.norman_msg_call_subscribe(p, u, n)
	})
}

// Unsubscribe removes the call's connection from uri's subscribers.
func (c *Call) Unsubscribe(uri string) error {
	u, n := strPtr(uri)
	return c.with("call unsubscribe", func(p *C.norman_msg_call) C.enum_norman_result {
		return C.norman_msg_call_unsubscribe(p, u, n)
	})
}

// AuthField is the value of an auth field of the message (after the layers opened it), if present.
func (c *Call) AuthField(name string) ([]byte, bool) {
	if checkCString("auth field", "name", name) != nil {
		return nil, false
	}
	cname, free, _ := cString("auth field", "name", name)
	defer free()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msg == nil {
		return nil, false
	}
	var p *C.uint8_t
	var n C.size_t
	if C.norman_msg_auth_field(c.msg, cname, &p, &n) != C.NORMAN_OK {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n)), true
}

// Server is a messaging server (netaio's TCPServer): handlers by message type and uri, pub/sub,
// notifications and broadcasts. Close it when done.
type Server struct {
	// mu guards ptr: calls hold it shared (the C API allows any of them at once), Close frees
	// under it.
	mu     sync.RWMutex
	ptr    *C.norman_msg_server
	client *Client
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
}

// ServerOptions tunes NewServer; nil takes the defaults.
type ServerOptions struct {
	// Layers seal and open every message of every connection (outermost); nil: none.
	Layers *Layers
	// AutoSubscribe answers SUBSCRIBE_URI and UNSUBSCRIBE_URI itself with CONFIRM_SUBSCRIBE and
	// CONFIRM_UNSUBSCRIBE (netaio's usual server), so Notify reaches subscribers.
	AutoSubscribe bool
}

// NewServer makes a server on client's runtime; add handlers, then Listen.
func NewServer(client *Client, opts *ServerOptions) (*Server, error) {
	const op = "msg server"
	if client == nil {
		return nil, newError(ErrNullArgument, op, "nil client")
	}
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	s := &Server{client: client}
	err := client.with(op, func(cp *C.norman_client) error {
		if err := call(op, func() C.enum_norman_result { return C.norman_msg_server_new(cp, o.Layers.cptr(), &s.ptr) }); err != nil {
			return err
		}
		client.adopt(s)
		return nil
	})
	runtime.KeepAlive(o.Layers)
	if err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	runtime.SetFinalizer(s, (*Server).Close)
	if o.AutoSubscribe {
		if err := s.shared(op, func(p *C.norman_msg_server) C.enum_norman_result {
			return C.norman_msg_server_auto_subscribe(p, true)
		}); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) shared(op string, f func(*C.norman_msg_server) C.enum_norman_result) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return newError(ErrClosed, op, "the server is closed")
	}
	return call(op, func() C.enum_norman_result { return f(s.ptr) })
}

// Handle routes messages of type t and uri to fn; uri "" takes every uri of that type (a handler
// for the exact uri wins). A later Handle for the same type and uri replaces the earlier one.
// Before or after Listen. Options: WithLayers (inner layers that open the messages and seal the
// replies), Once.
func (s *Server) Handle(t MsgType, uri string, fn HandlerFunc, opts ...Option) error {
	const op = "msg handle"
	if fn == nil {
		return newError(ErrNullArgument, op, "nil handler")
	}
	o := collect(opts)
	err := s.shared(op, func(p *C.norman_msg_server) C.enum_norman_result {
		u, n := strPtr(uri)
		// The library calls goNormanFree on the handle exactly once, even when this fails.
		h := cgo.NewHandle(&route{ctx: s.ctx, fn: fn})
		return C.go_msg_server_on(p, C.uint8_t(t), u, n, o.layers.cptr(), flags(o), C.uintptr_t(h))
	})
	runtime.KeepAlive(o.layers)
	return err
}

func flags(o options) C.uint32_t {
	if o.once {
		return C.NORMAN_MSG_ONCE
	}
	return 0
}

// Listen starts accepting connections on addr ("127.0.0.1:0" picks a free port; Addr tells it).
func (s *Server) Listen(addr string) error {
	const op = "msg listen"
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return newError(ErrInvalidArgument, op, err.Error())
	}
	caddr, free, err := cString(op, "address", addr)
	if err != nil {
		return err
	}
	defer free()
	var port C.uint16_t
	if err := s.shared(op, func(p *C.norman_msg_server) C.enum_norman_result {
		return C.norman_msg_server_listen(p, caddr, &port)
	}); err != nil {
		return err
	}
	s.mu.Lock()
	s.addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
	s.mu.Unlock()
	return nil
}

// Addr is the address the server listens on ("127.0.0.1:41234"), "" before Listen.
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.addr
}

// Notify sends NOTIFY_URI with content to the subscribers of uri; it returns how many it reached.
func (s *Server) Notify(uri string, content []byte) (int, error) {
	var delivered C.size_t
	u, un := strPtr(uri)
	c, cn := bytesPtr(content)
	err := s.shared("msg notify", func(p *C.norman_msg_server) C.enum_norman_result {
		return C.norman_msg_server_notify(p, u, un, c, cn, &delivered)
	})
	return int(delivered), err
}

// Broadcast sends a message of type t to every connection; it returns how many it reached.
func (s *Server) Broadcast(t MsgType, uri string, content []byte) (int, error) {
	var delivered C.size_t
	u, un := strPtr(uri)
	c, cn := bytesPtr(content)
	err := s.shared("msg broadcast", func(p *C.norman_msg_server) C.enum_norman_result {
		return C.norman_msg_server_broadcast(p, C.uint8_t(t), u, un, c, cn, &delivered)
	})
	return int(delivered), err
}

// Close stops listening, closes every connection, ends the handlers' context and releases the
// handlers. Idempotent.
func (s *Server) Close() error {
	if closeThenFree(&s.mu, &s.ptr,
		func(p *C.norman_msg_server) { C.norman_msg_server_close(p) },
		func(p *C.norman_msg_server) {
			s.cancel()
			C.norman_msg_server_free(p)
		}) {
		runtime.SetFinalizer(s, nil)
	}
	s.client.release(s)
	return nil
}

// String describes the server without its layers' keys.
func (s *Server) String() string { return fmt.Sprintf("norman.Server(%s)", s.Addr()) }
