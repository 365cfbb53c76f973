package norman

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"runtime/cgo"
	"unsafe"
)

// outcome is what an asynchronous C operation produced, copied out of its event into Go memory.
type outcome struct {
	code     Code
	message  string
	status   int
	body     []byte
	bytes    uint64
	checksum uint64
	state    EntityState
	msg      *Message // a messaging reply (also with ErrMsgRemote)
}

// pending is the Go side of one asynchronous operation; a cgo.Handle to it is the C userdata.
type pending struct {
	done     chan outcome // buffered: the callback thread never waits on Go
	progress func(sent, total uint64)
}

//export goNormanComplete
func goNormanComplete(userdata unsafe.Pointer, event *C.norman_event) {
	p := cgo.Handle(uintptr(userdata)).Value().(*pending)
	out := outcome{code: Code(C.norman_event_result(event))}
	if msg := C.norman_event_message(event); msg != nil {
		out.message = C.GoString(msg)
	}
	switch C.norman_event_kind_of(event) {
	case C.NORMAN_EVENT_REQUEST:
		out.status = int(C.norman_event_http_status(event))
		var body *C.uint8_t
		var n C.size_t
		if out.code == 0 && C.norman_event_body(event, &body, &n) == C.NORMAN_OK {
			out.body = C.GoBytes(unsafe.Pointer(body), C.int(n))
		}
	case C.NORMAN_EVENT_PUSH_FILE, C.NORMAN_EVENT_RETRIEVE_FILE:
		out.bytes = uint64(C.norman_event_bytes(event))
		out.checksum = uint64(C.norman_event_checksum(event))
	case C.NORMAN_EVENT_ENTITY_STATE:
		out.state = EntityState(C.norman_event_entity_state(event))
	case C.NORMAN_EVENT_MSG_REPLY:
		var m *C.norman_msg
		if C.norman_event_take_msg(event, &m) == C.NORMAN_OK && m != nil {
			var v C.go_msg_view
			C.go_msg_view_of(m, &v)
			out.msg = newMessage(&v)
			C.norman_msg_free(m)
		}
	}
	p.done <- out
}

//export goNormanProgress
func goNormanProgress(userdata unsafe.Pointer, sent, total C.uint64_t) {
	if p := cgo.Handle(uintptr(userdata)).Value().(*pending); p.progress != nil {
		p.progress(uint64(sent), uint64(total))
	}
}

//export goNormanFree
func goNormanFree(userdata unsafe.Pointer) {
	cgo.Handle(uintptr(userdata)).Delete()
}

// startFunc starts one `_async` C operation with the given userdata handle.
type startFunc func(client *C.norman_client, handle C.uintptr_t, opID *C.uint64_t) C.enum_norman_result

// await starts an asynchronous operation and waits for its completion or for ctx: on cancellation
// it cancels the operation and still waits for the completion (which is then prompt), so nothing
// outlives the call.
func (c *Client) await(ctx context.Context, op string, progress func(sent, total uint64), start startFunc) (outcome, error) {
	if err := done(ctx, op); err != nil {
		return outcome{}, err
	}
	p := &pending{done: make(chan outcome, 1), progress: progress}
	var opID C.uint64_t
	err := c.with(op, func(ptr *C.norman_client) error {
		// The library frees the handle (goNormanFree) exactly once, even when the start fails.
		h := cgo.NewHandle(p)
		return call(op, func() C.enum_norman_result { return start(ptr, C.uintptr_t(h), &opID) })
	})
	if err != nil {
		return outcome{}, err
	}
	var out outcome
	select {
	case out = <-p.done:
	case <-ctx.Done():
		_ = c.with(op, func(ptr *C.norman_client) error {
			C.norman_client_cancel(ptr, opID) // fails only when it completed meanwhile
			return nil
		})
		out = <-p.done
		if out.code == ErrCancelled {
			return out, contextError(op, ctx.Err())
		}
	}
	if out.code != 0 {
		return out, newError(out.code, op, c.scrub(out.message))
	}
	return out, nil
}

// opened is what an open in openWithin's goroutine produced.
type opened[H any] struct {
	handle H
	err    error
}

// openWithin runs a blocking open (a connect, a request for a socket, the response headers) in its
// own goroutine so that ctx can end the wait; a handle that opens after the caller left is freed.
func openWithin[H any](ctx context.Context, op string, open func() (H, error), free func(H)) (H, error) {
	var none H
	if err := done(ctx, op); err != nil {
		return none, err
	}
	result := make(chan opened[H], 1)
	abandoned := make(chan struct{})
	go func() {
		h, err := open()
		select {
		case result <- opened[H]{h, err}:
		case <-abandoned:
			if err == nil {
				free(h)
			}
		}
	}()
	select {
	case r := <-result:
		return r.handle, r.err
	case <-ctx.Done():
		close(abandoned)
		select { // the open may have finished at the same moment
		case r := <-result:
			if r.err == nil {
				free(r.handle)
			}
		default:
		}
		return none, contextError(op, ctx.Err())
	}
}
