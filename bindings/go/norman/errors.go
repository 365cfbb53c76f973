package norman

import (
	"context"
	"errors"
	"fmt"
)

// Code is a libnorman result code (the C API's norman_result). The numbers are stable. A Code is
// also an error, so errors.Is(err, norman.ErrConnect) tells what went wrong.
type Code int32

// The result codes of the C API. 1-99 are argument and state errors, 100-199 HTTP, 200-299
// transport, crypto and checksum, 900-999 internal.
const (
	ErrNullArgument    Code = 1
	ErrInvalidArgument Code = 2
	ErrInvalidUTF8     Code = 3
	ErrInvalidJSON     Code = 4
	ErrInvalidConfig   Code = 5
	ErrInvalidPairing  Code = 6
	ErrState           Code = 7
	ErrWrongThread     Code = 8
	ErrBusy            Code = 9
	ErrCancelled       Code = 10
	ErrBufferTooSmall  Code = 12
	// ErrClosed: the connection, server, node or Client is closed (by Close, or the peer went away).
	// A receive that reports it is a clean end, not a failure.
	ErrClosed             Code = 13
	ErrInvalidBSON        Code = 14
	ErrHTTPStatus         Code = 100
	ErrUnauthorized       Code = 101
	ErrNotFound           Code = 102
	ErrDecode             Code = 103
	ErrConnect            Code = 200
	ErrTimeout            Code = 201
	ErrIO                 Code = 202
	ErrNetwork            Code = 203
	ErrTruncated          Code = 204
	ErrOversize           Code = 205
	ErrKeystreamExhausted Code = 206
	ErrAuthHeaderMismatch Code = 207
	ErrChecksumMismatch   Code = 208
	ErrProtocol           Code = 209
	ErrMsgAuth            Code = 210
	ErrDecrypt            Code = 211
	// ErrMsgRemote: the peer answered ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED; the error is a
	// *RemoteError carrying the reply.
	ErrMsgRemote Code = 212
	ErrPanic     Code = 900
	ErrInternal  Code = 901
)

var codeNames = map[Code]string{
	ErrNullArgument: "NORMAN_ERROR_NULL_ARGUMENT", ErrInvalidArgument: "NORMAN_ERROR_INVALID_ARGUMENT",
	ErrInvalidUTF8: "NORMAN_ERROR_INVALID_UTF8", ErrInvalidJSON: "NORMAN_ERROR_INVALID_JSON",
	ErrInvalidConfig: "NORMAN_ERROR_INVALID_CONFIG", ErrInvalidPairing: "NORMAN_ERROR_INVALID_PAIRING",
	ErrState: "NORMAN_ERROR_STATE", ErrWrongThread: "NORMAN_ERROR_WRONG_THREAD", ErrBusy: "NORMAN_ERROR_BUSY",
	ErrCancelled: "NORMAN_ERROR_CANCELLED", ErrBufferTooSmall: "NORMAN_ERROR_BUFFER_TOO_SMALL",
	ErrClosed: "NORMAN_CLOSED", ErrInvalidBSON: "NORMAN_ERROR_INVALID_BSON",
	ErrHTTPStatus: "NORMAN_ERROR_HTTP_STATUS", ErrUnauthorized: "NORMAN_ERROR_HTTP_UNAUTHORIZED",
	ErrNotFound: "NORMAN_ERROR_HTTP_NOT_FOUND", ErrDecode: "NORMAN_ERROR_DECODE", ErrConnect: "NORMAN_ERROR_CONNECT",
	ErrTimeout: "NORMAN_ERROR_TIMEOUT", ErrIO: "NORMAN_ERROR_IO", ErrNetwork: "NORMAN_ERROR_NETWORK",
	ErrTruncated: "NORMAN_ERROR_TRUNCATED", ErrOversize: "NORMAN_ERROR_OVERSIZE",
	ErrKeystreamExhausted: "NORMAN_ERROR_KEYSTREAM_EXHAUSTED", ErrAuthHeaderMismatch: "NORMAN_ERROR_AUTH_HEADER_MISMATCH",
	ErrChecksumMismatch: "NORMAN_ERROR_CHECKSUM_MISMATCH", ErrProtocol: "NORMAN_ERROR_PROTOCOL",
	ErrMsgAuth: "NORMAN_ERROR_MSG_AUTH", ErrDecrypt: "NORMAN_ERROR_DECRYPT", ErrMsgRemote: "NORMAN_ERROR_MSG_REMOTE",
	ErrPanic: "NORMAN_ERROR_PANIC", ErrInternal: "NORMAN_ERROR_INTERNAL",
}

// String is the C name of the code ("NORMAN_ERROR_CONNECT").
func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return fmt.Sprintf("norman_result(%d)", int32(c))
}

// Error makes a Code usable as a sentinel with errors.Is.
func (c Code) Error() string { return c.String() }

// Error is what every failing call of this package returns: the code, what the call was doing and
// the library's message (never containing a secret). Use errors.Is(err, norman.ErrTimeout) to test
// the code and errors.As(err, &e) to read the fields.
type Error struct {
	Code Code
	// Op names the call that failed ("upload write", "POST persist/models/").
	Op string
	// Message is libnorman's description of this failure.
	Message string
	// Status is the HTTP status when the server answered one (0 otherwise).
	Status int
	cause  error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.String()
	}
	if e.Op == "" {
		return "norman: " + msg
	}
	return "norman: " + e.Op + ": " + msg
}

// Is matches the Code of the error, so errors.Is(err, norman.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	code, ok := target.(Code)
	return ok && code == e.Code
}

// Unwrap gives the context error of a cancelled or timed-out call (context.Canceled,
// context.DeadlineExceeded), or nil.
func (e *Error) Unwrap() error { return e.cause }

func newError(code Code, op, message string) *Error {
	return &Error{Code: code, Op: op, Message: message}
}

// contextError describes a call ended by its context: both errors.Is(err, norman.ErrCancelled) (or
// ErrTimeout for a deadline) and errors.Is(err, context.Canceled) hold.
func contextError(op string, err error) *Error {
	code := ErrCancelled
	if errors.Is(err, context.DeadlineExceeded) {
		code = ErrTimeout
	}
	return &Error{Code: code, Op: op, Message: err.Error(), cause: err}
}

// httpError describes a non-2xx answer of a typed call.
func httpError(op string, status int, body []byte) *Error {
	code := ErrHTTPStatus
	switch {
	case status == 401 || status == 403:
		code = ErrUnauthorized
	case status == 404:
		code = ErrNotFound
	}
	const limit = 512
	excerpt := string(body)
	if len(excerpt) > limit {
		excerpt = excerpt[:limit] + "..."
	}
	return &Error{Code: code, Op: op, Status: status, Message: fmt.Sprintf("HTTP %d: %s", status, excerpt)}
}
