package norman

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"
)

// MsgType is a netaio 0.0.9 message type (the first byte of a frame). Types from 31 up are free
// for applications.
type MsgType uint8

// netaio's message types (the C API's enum norman_msg_type).
const (
	MsgRequestURI         MsgType = 0
	MsgRespondURI         MsgType = 1
	MsgCreateURI          MsgType = 2
	MsgUpdateURI          MsgType = 3
	MsgDeleteURI          MsgType = 4
	MsgSubscribeURI       MsgType = 5
	MsgUnsubscribeURI     MsgType = 6
	MsgPublishURI         MsgType = 7
	MsgNotifyURI          MsgType = 8
	MsgAdvertisePeer      MsgType = 9
	MsgOK                 MsgType = 10
	MsgConfirmSubscribe   MsgType = 11
	MsgConfirmUnsubscribe MsgType = 12
	MsgPeerDiscovered     MsgType = 13
	MsgError              MsgType = 20
	MsgAuthError          MsgType = 23
	MsgNotFound           MsgType = 24
	MsgNotPermitted       MsgType = 25
	MsgDisconnect         MsgType = 30
	// MsgFirstCustom is the first type netaio leaves to applications.
	MsgFirstCustom MsgType = 31
)

var msgTypeNames = map[MsgType]string{
	MsgRequestURI: "REQUEST_URI", MsgRespondURI: "RESPOND_URI", MsgCreateURI: "CREATE_URI",
	MsgUpdateURI: "UPDATE_URI", MsgDeleteURI: "DELETE_URI", MsgSubscribeURI: "SUBSCRIBE_URI",
	MsgUnsubscribeURI: "UNSUBSCRIBE_URI", MsgPublishURI: "PUBLISH_URI", MsgNotifyURI: "NOTIFY_URI",
	MsgAdvertisePeer: "ADVERTISE_PEER", MsgOK: "OK", MsgConfirmSubscribe: "CONFIRM_SUBSCRIBE",
	MsgConfirmUnsubscribe: "CONFIRM_UNSUBSCRIBE", MsgPeerDiscovered: "PEER_DISCOVERED", MsgError: "ERROR",
	MsgAuthError: "AUTH_ERROR", MsgNotFound: "NOT_FOUND", MsgNotPermitted: "NOT_PERMITTED",
	MsgDisconnect: "DISCONNECT",
}

// String is netaio's name of the type ("REQUEST_URI"), or TYPE_n for a custom one.
func (t MsgType) String() string {
	if name, ok := msgTypeNames[t]; ok {
		return name
	}
	return fmt.Sprintf("TYPE_%d", uint8(t))
}

// Message is a received message, copied into Go memory (it is the caller's).
type Message struct {
	Type    MsgType
	URI     string
	Content []byte
}

// Reply is what a handler answers: the uri and the request id are the request's.
type Reply struct {
	Type    MsgType
	Content []byte
}

// Respond is a RESPOND_URI reply with content.
func Respond(content []byte) *Reply { return &Reply{Type: MsgRespondURI, Content: content} }

// RemoteError is the error of a request the peer answered with ERROR, AUTH_ERROR, NOT_FOUND or
// NOT_PERMITTED: errors.Is(err, ErrMsgRemote) holds and Reply is the answer. A handler returns one
// (ReplyError) to answer with that type instead of ERROR.
type RemoteError struct {
	Reply *Message
	err   *Error
}

// Error is the library's description (it names the reply's type and shows its content).
func (e *RemoteError) Error() string { return e.err.Error() }

// Unwrap gives the *Error (code ErrMsgRemote), so errors.Is and errors.As(err, **Error) work.
func (e *RemoteError) Unwrap() error { return e.err }

// ReplyError is the error a handler returns to answer with type t (MsgNotFound, MsgNotPermitted,
// MsgError, MsgAuthError) and content.
func ReplyError(t MsgType, content []byte) error {
	return &RemoteError{Reply: &Message{Type: t, Content: content},
		err: newError(ErrMsgRemote, "handler", "answered "+t.String())}
}

// Layer is one auth or cipher layer of a stack (NewLayers). It never prints its key or secret.
type Layer struct {
	kind       int
	key        []byte
	maxSkew    time.Duration
	encryptURI bool
	field      string // "": the layer's usual auth field
}

const (
	layerHMAC = iota + 1
	layerCipher
	layerAEAD
)

// NetaioHMAC is netaio's HMACAuthPlugin with this shared secret (no freshness window, as netaio).
func NetaioHMAC(secret []byte) Layer {
	return Layer{kind: layerHMAC, key: append([]byte(nil), secret...)}
}

// NetaioCipher is netaio's Sha256StreamCipherPlugin with this key, the uri encrypted too (netaio's
// default). It has no integrity of its own: put it under a NetaioHMAC (NewLayers(NetaioCipher(k),
// NetaioHMAC(s)) is netaio's usual pair).
func NetaioCipher(key []byte) Layer {
	return Layer{kind: layerCipher, key: append([]byte(nil), key...), encryptURI: true}
}

// AEAD is libnorman's ChaCha20-Poly1305 layer (libnorman peers only); the key is 32 bytes.
func AEAD(key []byte) Layer {
	return Layer{kind: layerAEAD, key: append([]byte(nil), key...), encryptURI: true}
}

// WithMaxSkew gives an HMAC layer a freshness window: messages whose timestamp is further than d
// from now are refused.
func (l Layer) WithMaxSkew(d time.Duration) Layer { l.maxSkew = d; return l }

// PlainURI leaves the uri unencrypted by a NetaioCipher or AEAD layer (netaio's
// encrypt_uri=False): an inner layer needs it, so that the server can route by uri.
func (l Layer) PlainURI() Layer { l.encryptURI = false; return l }

// Field names the layer's auth field ("hmac", "iv", "aead" by default): an inner layer of the same
// kind as an outer one needs its own, e.g. "hmac2" and "iv2" as `norman msg serve --inner-secret`
// and --inner-cipher-key use (an HMAC's nonce and ts fields stay shared, as netaio nests them).
func (l Layer) Field(name string) Layer { l.field = name; return l }

// String names the layer, never its key.
func (l Layer) String() string {
	switch l.kind {
	case layerHMAC:
		return "NetaioHMAC(<redacted>)"
	case layerCipher:
		return "NetaioCipher(<redacted>)"
	case layerAEAD:
		return "AEAD(<redacted>)"
	}
	return "Layer(none)"
}

// Format prints String for every verb, so %#v and %x show no key either.
func (l Layer) Format(f fmt.State, _ rune) { fmt.Fprint(f, l.String()) }

// Layers is an ordered stack of layers (the first seals first and opens last), held by the library.
// Build it once and pass it to servers, connections, nodes, handlers and calls; the library copies
// what it needs, and the garbage collector frees the rest.
type Layers struct {
	ptr *C.norman_msg_layers
}

// NewLayers builds a stack. An empty key or secret, or an AEAD key that is not 32 bytes, is
// ErrInvalidArgument.
func NewLayers(layers ...Layer) (*Layers, error) {
	const op = "new layers"
	l := &Layers{}
	if err := call(op, func() C.enum_norman_result { return C.norman_msg_layers_new(&l.ptr) }); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(l, func(l *Layers) { C.norman_msg_layers_free(l.ptr) })
	for _, layer := range layers {
		if err := l.add(op, layer); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Layers) add(op string, layer Layer) error {
	key, n := bytesPtr(layer.key)
	var field *C.char // NULL: the layer's usual field
	if layer.field != "" {
		f, free, err := cString(op, "field", layer.field)
		if err != nil {
			return err
		}
		defer free()
		field = f
	}
	switch layer.kind {
	case layerHMAC:
		skew := layer.maxSkew / time.Second
		if skew < 0 || skew > math.MaxUint32 || (layer.maxSkew > 0 && skew == 0) {
			return newError(ErrInvalidArgument, op, "max skew out of range (1 s to 136 years)")
		}
		return call(op, func() C.enum_norman_result {
			return C.norman_msg_layers_add_netaio_hmac_field(l.ptr, key, n, C.uint32_t(skew), field)
		})
	case layerCipher:
		return call(op, func() C.enum_norman_result {
			return C.norman_msg_layers_add_netaio_cipher_field(l.ptr, key, n, C.bool(layer.encryptURI), field)
		})
	case layerAEAD:
		return call(op, func() C.enum_norman_result {
			return C.norman_msg_layers_add_aead_field(l.ptr, key, n, C.bool(layer.encryptURI), field)
		})
	}
	return newError(ErrInvalidArgument, op, "a zero Layer (use NetaioHMAC, NetaioCipher or AEAD)")
}

// cptr is the C handle, nil for a nil stack (no layers).
func (l *Layers) cptr() *C.norman_msg_layers {
	if l == nil {
		return nil
	}
	return l.ptr
}

// Option tunes one handler or call: WithLayers, Once.
type Option func(*options)

type options struct {
	layers *Layers
	once   bool
}

// WithLayers seals (or opens, for a handler) the message with these inner layers, inside the
// connection's own.
func WithLayers(l *Layers) Option { return func(o *options) { o.layers = l } }

// Once removes a handler after its first message.
func Once() Option { return func(o *options) { o.once = true } }

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// innerOf is the inner layers of a call's options, without allocating when there are none (the
// hot path of Request and Send).
func innerOf(opts []Option) *Layers {
	if len(opts) == 0 {
		return nil
	}
	return collect(opts).layers
}

// bytesPtr gives C a Go slice's bytes for the duration of one call (cgo allows it: no Go pointers
// inside); NULL for an empty one.
func bytesPtr(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// strPtr does the same for a string's bytes, with no copy.
func strPtr(s string) (*C.uint8_t, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(*(*unsafe.Pointer)(unsafe.Pointer(&s))), C.size_t(len(s))
}

// newMessage copies a message the library lends into one Go allocation (the uri's bytes, then the
// content's; the content's capacity ends at its length, so appending to it never touches the uri).
func newMessage(v *C.go_msg_view) *Message {
	ulen, clen := int(v.uri_len), int(v.content_len)
	buf := make([]byte, ulen+clen)
	if ulen > 0 {
		copy(buf, unsafe.Slice((*byte)(unsafe.Pointer(v.uri)), ulen))
	}
	if clen > 0 {
		copy(buf[ulen:], unsafe.Slice((*byte)(unsafe.Pointer(v.content)), clen))
	}
	m := &Message{Type: MsgType(v.msg_type), Content: buf[ulen : ulen+clen : ulen+clen]}
	if ulen > 0 {
		u := buf[:ulen]
		m.URI = *(*string)(unsafe.Pointer(&u)) // never written again: the string's bytes stay fixed
	}
	return m
}

// timeoutMS turns ctx's deadline into the C API's timeout (-1 without one, fallback when given).
// It reports false when the deadline has passed.
func timeoutMS(ctx context.Context, fallback time.Duration) (C.int32_t, bool) {
	d := fallback
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline)
		if d <= 0 {
			return 0, false
		}
	} else if fallback <= 0 {
		return -1, true
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond // round up: 0 would only poll
	if ms > math.MaxInt32 {
		return -1, true
	}
	return C.int32_t(ms), true
}

// deadlineError is the error of a wait ended by ctx's deadline (ErrTimeout and
// context.DeadlineExceeded), or err itself.
func deadlineError(ctx context.Context, op string, err *Error) error {
	if err.Code == ErrTimeout {
		if _, ok := ctx.Deadline(); ok {
			return &Error{Code: ErrTimeout, Op: op, Message: err.Message, cause: context.DeadlineExceeded}
		}
	}
	return err
}

// replyOf ends a call that may hand out a message (a request, a next): the message copied into Go
// and freed, or the call's error, a *RemoteError when the peer answered an error type. Run on the
// thread of the call (it reads norman_last_error).
func replyOf(ctx context.Context, op string, rc C.enum_norman_result, v *C.go_msg_view) (*Message, error) {
	var m *Message
	if v.msg != nil {
		m = newMessage(v)
		C.norman_msg_free(v.msg)
	}
	if rc == C.NORMAN_OK {
		return m, nil
	}
	e := lastError(op, rc)
	if e.Code == ErrMsgRemote && m != nil {
		return nil, &RemoteError{Reply: m, err: e}
	}
	return nil, deadlineError(ctx, op, e)
}
