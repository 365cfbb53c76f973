package norman

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"net"
	"runtime"
	"runtime/cgo"
	"strconv"
	"sync"
	"time"
	"unsafe"
)

// Node is a UDP messaging node (netaio's UDPNode): datagrams to addresses or to a multicast group,
// requests with replies, handlers, and peer discovery. Close it when done.
type Node struct {
	mu        sync.RWMutex // guards ptr as Server.mu does
	ptr       *C.norman_msg_node
	client    *Client
	addr      string
	ctx       context.Context
	cancel    context.CancelFunc
	closed    chan struct{}
	closeOnce sync.Once
	msgsOnce  sync.Once
	msgs      chan *Message
}

// NodeOptions says where a node binds and multicasts.
type NodeOptions struct {
	// Bind is the UDP address ("127.0.0.1:0" picks a free port).
	Bind string
	// Group is the multicast group: "239.255.77.77" on the node's own port (as netaio), or
	// "239.255.77.77:9999" on that port (nodes bound to different ports meet there); "" disables
	// multicast.
	Group string
	// MulticastInterface is the IPv4 address of the interface multicasts leave and are heard on
	// ("" is 127.0.0.1, which keeps them on this machine; for IPv6 an interface index, "" the
	// kernel's choice).
	MulticastInterface string
	// Layers seal and open every datagram (outermost); nil: none.
	Layers *Layers
}

// NewNode binds a node on client's runtime.
func NewNode(client *Client, opts NodeOptions) (*Node, error) {
	const op = "msg node"
	if client == nil {
		return nil, newError(ErrNullArgument, op, "nil client")
	}
	host, _, err := net.SplitHostPort(opts.Bind)
	if err != nil {
		return nil, newError(ErrInvalidArgument, op, "bind address: "+err.Error())
	}
	var cstrs []*C.char
	defer func() {
		for _, s := range cstrs {
			C.free(unsafe.Pointer(s))
		}
	}()
	optional := func(name, value string) (*C.char, error) {
		if value == "" {
			return nil, nil
		}
		s, _, err := cString(op, name, value)
		if err == nil {
			cstrs = append(cstrs, s)
		}
		return s, err
	}
	bind, err := optional("bind address", opts.Bind)
	if err != nil {
		return nil, err
	}
	group, err := optional("group", opts.Group)
	if err != nil {
		return nil, err
	}
	iface, err := optional("multicast interface", opts.MulticastInterface)
	if err != nil {
		return nil, err
	}
	n := &Node{client: client, closed: make(chan struct{})}
	err = client.with(op, func(cp *C.norman_client) error {
		if err := call(op, func() C.enum_norman_result {
			return C.norman_msg_node_new(cp, bind, group, iface, opts.Layers.cptr(), &n.ptr)
		}); err != nil {
			return err
		}
		client.adopt(n)
		return nil
	})
	runtime.KeepAlive(opts.Layers)
	if err != nil {
		return nil, err
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	runtime.SetFinalizer(n, (*Node).Close)
	var port C.uint16_t
	if err := n.shared(op, func(p *C.norman_msg_node) C.enum_norman_result { return C.norman_msg_node_port(p, &port) }); err != nil {
		n.Close()
		return nil, err
	}
	n.addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
	return n, nil
}

func (n *Node) shared(op string, f func(*C.norman_msg_node) C.enum_norman_result) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.ptr == nil {
		return newError(ErrClosed, op, "the node is closed")
	}
	return call(op, func() C.enum_norman_result { return f(n.ptr) })
}

// Addr is the node's UDP address ("127.0.0.1:41234").
func (n *Node) Addr() string { return n.addr }

// Handle routes datagrams of type t and uri ("" for any) to fn; its reply goes to the sender.
// Options: WithLayers, Once.
func (n *Node) Handle(t MsgType, uri string, fn HandlerFunc, opts ...Option) error {
	const op = "node handle"
	if fn == nil {
		return newError(ErrNullArgument, op, "nil handler")
	}
	o := collect(opts)
	err := n.shared(op, func(p *C.norman_msg_node) C.enum_norman_result {
		u, un := strPtr(uri)
		h := cgo.NewHandle(&route{ctx: n.ctx, fn: fn}) // freed by the library exactly once
		return C.go_msg_node_on(p, C.uint8_t(t), u, un, o.layers.cptr(), flags(o), C.uintptr_t(h))
	})
	runtime.KeepAlive(o.layers)
	return err
}

// Send sends one datagram to addr. Options: WithLayers.
func (n *Node) Send(addr string, t MsgType, uri string, content []byte, opts ...Option) error {
	const op = "node send"
	caddr, free, err := cString(op, "address", addr)
	if err != nil {
		return err
	}
	defer free()
	inner := innerOf(opts)
	u, un := strPtr(uri)
	c, cn := bytesPtr(content)
	err = n.shared(op, func(p *C.norman_msg_node) C.enum_norman_result {
		return C.norman_msg_node_send_to(p, caddr, C.uint8_t(t), u, un, c, cn, inner.cptr())
	})
	runtime.KeepAlive(inner)
	return err
}

// Multicast sends one datagram to the node's group. Options: WithLayers.
func (n *Node) Multicast(t MsgType, uri string, content []byte, opts ...Option) error {
	inner := innerOf(opts)
	u, un := strPtr(uri)
	c, cn := bytesPtr(content)
	err := n.shared("node multicast", func(p *C.norman_msg_node) C.enum_norman_result {
		return C.norman_msg_node_multicast(p, C.uint8_t(t), u, un, c, cn, inner.cptr())
	})
	runtime.KeepAlive(inner)
	return err
}

// Request sends a datagram to addr and waits for the reply until ctx's deadline (else the client's
// default of the C API: see NewNode) or its cancellation. Error replies are *RemoteError.
func (n *Node) Request(ctx context.Context, addr string, t MsgType, uri string, content []byte, opts ...Option) (*Message, error) {
	const op = "node request"
	if err := done(ctx, op); err != nil {
		return nil, err
	}
	caddr, free, err := cString(op, "address", addr)
	if err != nil {
		return nil, err
	}
	timeout, ok := timeoutMS(ctx, 0)
	if !ok {
		return nil, contextError(op, context.DeadlineExceeded)
	}
	inner := innerOf(opts)
	// The blocking call runs in its own goroutine so that a cancelled ctx ends the wait; the C
	// call ends at its timeout or when the node closes.
	type result struct {
		m   *Message
		err error
	}
	out := make(chan result, 1)
	go func() {
		defer free()
		u, un := strPtr(uri)
		c, cn := bytesPtr(content)
		var v C.go_msg_view
		n.mu.RLock()
		defer n.mu.RUnlock()
		if n.ptr == nil {
			out <- result{nil, newError(ErrClosed, op, "the node is closed")}
			return
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		rc := C.go_msg_node_request(n.ptr, caddr, C.uint8_t(t), u, un, c, cn, inner.cptr(), timeout, &v)
		runtime.KeepAlive(inner)
		m, err := replyOf(ctx, op, rc, &v)
		out <- result{m, err}
	}()
	select {
	case r := <-out:
		return r.m, r.err
	case <-ctx.Done():
		return nil, contextError(op, ctx.Err())
	}
}

// ManagePeers advertises (id, data) to the group every `every` and forgets peers silent for
// `timeout` (netaio's peer management); Peers lists those heard.
func (n *Node) ManagePeers(id, data []byte, every, timeout time.Duration) error {
	const op = "node manage peers"
	ms := func(d time.Duration) (C.uint32_t, error) {
		if d < time.Millisecond || d/time.Millisecond > math.MaxUint32 {
			return 0, newError(ErrInvalidArgument, op, "every and timeout must be between 1 ms and 49 days")
		}
		return C.uint32_t(d / time.Millisecond), nil
	}
	everyMS, err := ms(every)
	if err != nil {
		return err
	}
	timeoutMS, err := ms(timeout)
	if err != nil {
		return err
	}
	i, in := bytesPtr(id)
	d, dn := bytesPtr(data)
	return n.shared(op, func(p *C.norman_msg_node) C.enum_norman_result {
		return C.norman_msg_node_manage_peers(p, i, in, d, dn, everyMS, timeoutMS)
	})
}

// Peer is another node heard advertising itself.
type Peer struct {
	ID       []byte
	Addr     string
	Data     []byte
	LastSeen time.Duration // how long ago
}

// Peers lists the peers heard and not yet timed out.
func (n *Node) Peers() ([]Peer, error) {
	const op = "node peers"
	var js *C.char
	if err := n.shared(op, func(p *C.norman_msg_node) C.enum_norman_result {
		return C.norman_msg_node_peers_json(p, &js)
	}); err != nil {
		return nil, err
	}
	text := C.GoString(js)
	C.norman_string_free(js)
	var raw []struct {
		IDHex   string `json:"id_hex"`
		Addr    string `json:"addr"`
		DataB64 string `json:"data_b64"`
		AgoMS   int64  `json:"last_seen_ms_ago"`
	}
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, newError(ErrDecode, op, err.Error())
	}
	peers := make([]Peer, 0, len(raw))
	for _, r := range raw {
		id, err := hex.DecodeString(r.IDHex)
		if err != nil {
			return nil, newError(ErrDecode, op, "id_hex: "+err.Error())
		}
		data, err := base64.StdEncoding.DecodeString(r.DataB64)
		if err != nil {
			return nil, newError(ErrDecode, op, "data_b64: "+err.Error())
		}
		peers = append(peers, Peer{ID: id, Addr: r.Addr, Data: data, LastSeen: time.Duration(r.AgoMS) * time.Millisecond})
	}
	return peers, nil
}

// Messages returns the datagrams no handler took, in order; the channel closes with the node.
func (n *Node) Messages() <-chan *Message {
	n.msgsOnce.Do(func() {
		n.msgs = make(chan *Message, 64)
		go n.pump()
	})
	return n.msgs
}

func (n *Node) pump() {
	defer close(n.msgs)
	for {
		m, rc := n.next()
		switch rc {
		case C.NORMAN_OK:
		case C.NORMAN_NO_EVENT:
			continue
		default:
			return
		}
		select {
		case n.msgs <- m:
		case <-n.closed:
			return
		}
	}
}

func (n *Node) next() (*Message, C.enum_norman_result) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.ptr == nil {
		return nil, C.NORMAN_CLOSED
	}
	var v C.go_msg_view
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := C.go_msg_node_next(n.ptr, -1, &v)
	m, _ := replyOf(context.Background(), "node next", rc, &v)
	return m, rc
}

// Close stops the node (a DISCONNECT to its peers when it manages them), ends the handlers'
// context and Messages' channel. Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { close(n.closed) })
	if closeThenFree(&n.mu, &n.ptr,
		func(p *C.norman_msg_node) { C.norman_msg_node_close(p) },
		func(p *C.norman_msg_node) {
			n.cancel()
			C.norman_msg_node_free(p)
		}) {
		runtime.SetFinalizer(n, nil)
	}
	n.client.release(n)
	return nil
}
