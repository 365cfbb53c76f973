package norman

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"unsafe"
)

// Response is any answer of the server to Request, 2xx or not.
type Response struct {
	Status int
	Body   []byte
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// JSON decodes the body into v (ErrDecode when it does not fit).
func (r *Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return newError(ErrDecode, "decode response", err.Error())
	}
	return nil
}

// Request sends method (GET, POST, PUT, PATCH, DELETE, HEAD) to route under the base URL with the
// client's token. body is nil (no body), a []byte or json.RawMessage sent as it is, or a value
// encoded as JSON. Any answer is a Response; only transport failures are errors.
func (c *Client) Request(ctx context.Context, method, route string, body any) (*Response, error) {
	op := method + " " + route
	cmethod, freeMethod, err := cString(op, "method", method)
	if err != nil {
		return nil, err
	}
	defer freeMethod()
	croute, freeRoute, err := cString(op, "route", route)
	if err != nil {
		return nil, err
	}
	defer freeRoute()
	var payload []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		payload = b
	case json.RawMessage:
		payload = b
	default:
		encoded, err := json.Marshal(body)
		if err != nil {
			return nil, newError(ErrInvalidJSON, op, err.Error())
		}
		payload = encoded
	}
	var cbody *C.char
	if payload != nil {
		if err := checkCString(op, "body", string(payload)); err != nil {
			return nil, err
		}
		cbody = (*C.char)(C.CBytes(append(payload, 0)))
		defer C.free(unsafe.Pointer(cbody))
	}
	out, err := c.await(ctx, op, nil, func(client *C.norman_client, h C.uintptr_t, opID *C.uint64_t) C.enum_norman_result {
		return C.go_request_async(client, cmethod, croute, cbody, h, opID)
	})
	if err != nil {
		return nil, err
	}
	return &Response{Status: out.status, Body: out.body}, nil
}

// Call is Request for typed routes: in is encoded as the JSON body (nil: none), a non-2xx answer is
// an *Error with its Status (ErrUnauthorized, ErrNotFound, ErrHTTPStatus), and a 2xx body is decoded
// into out (nil: ignored).
func (c *Client) Call(ctx context.Context, method, route string, in, out any) error {
	resp, err := c.Request(ctx, method, route, in)
	if err != nil {
		return err
	}
	op := method + " " + route
	if !resp.OK() {
		e := httpError(op, resp.Status, resp.Body)
		e.Message = c.scrub(e.Message)
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return newError(ErrDecode, op, fmt.Sprintf("unexpected response: %v", err))
	}
	return nil
}
