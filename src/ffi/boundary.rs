//! The boundary every exported function goes through: panic catching, argument checks made before
//! any slice or string is built, UTF-8 checks, and the mapping of [`crate::Error`] to `norman_result`.
//! It also keeps the calling thread's last error message (`norman_last_error`).

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::error::{Error, ErrorKind};

/// Result of every fallible call. The numbers are stable: never renumbered, only added to.
///
/// 0 is success; 1-99 argument and state errors; 100-199 HTTP; 200-299 transport, crypto and
/// checksum; 900-999 internal. `norman_result_str()` names each one.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum norman_result {
    /// Success.
    NORMAN_OK = 0,
    /// A required pointer argument was NULL.
    NORMAN_ERROR_NULL_ARGUMENT = 1,
    /// An argument is out of range or malformed (zero capacity, unknown enum value, bad checksum text).
    NORMAN_ERROR_INVALID_ARGUMENT = 2,
    /// A string argument is not valid UTF-8.
    NORMAN_ERROR_INVALID_UTF8 = 3,
    /// A JSON argument does not parse.
    NORMAN_ERROR_INVALID_JSON = 4,
    /// A configuration value is invalid (base URL, timeout, chunk or flush size).
    NORMAN_ERROR_INVALID_CONFIG = 5,
    /// A pairing field is invalid (empty host, port 0, key/nonce/header not base64 of the right length).
    NORMAN_ERROR_INVALID_PAIRING = 6,
    /// The handle is in the wrong state (upload already finished, failed or aborted).
    NORMAN_ERROR_STATE = 7,
    /// A blocking call was made from the client's callback thread or from inside a runtime worker.
    NORMAN_ERROR_WRONG_THREAD = 8,
    /// Another thread is using this handle right now.
    NORMAN_ERROR_BUSY = 9,
    /// The operation was cancelled (norman_client_cancel, norman_upload_abort, client freed).
    NORMAN_ERROR_CANCELLED = 10,
    /// norman_client_next_event: no event arrived within the timeout (not a failure).
    NORMAN_NO_EVENT = 11,
    /// The output buffer is too small.
    NORMAN_ERROR_BUFFER_TOO_SMALL = 12,
    /// The connection, server or node is closed (not a failure when a receive reports it: the peer
    /// ended the stream cleanly between messages and nothing more will come). A call that needs an
    /// open connection gets it after `*_close`, or once the peer went away.
    NORMAN_CLOSED = 13,
    /// A BSON argument is not exactly one valid document (bad length prefix, bad element, bad UTF-8).
    NORMAN_ERROR_INVALID_BSON = 14,
    /// The server answered a non-2xx status not listed below.
    NORMAN_ERROR_HTTP_STATUS = 100,
    /// The server answered 401 or 403.
    NORMAN_ERROR_HTTP_UNAUTHORIZED = 101,
    /// The server answered 404.
    NORMAN_ERROR_HTTP_NOT_FOUND = 102,
    /// A response could not be decoded (unexpected JSON).
    NORMAN_ERROR_DECODE = 103,
    /// Could not connect (refused, unreachable, DNS).
    NORMAN_ERROR_CONNECT = 200,
    /// No progress within the configured timeout.
    NORMAN_ERROR_TIMEOUT = 201,
    /// A local or socket I/O error (connection reset mid-upload, unreadable file).
    NORMAN_ERROR_IO = 202,
    /// An HTTP transport error other than connect or timeout.
    NORMAN_ERROR_NETWORK = 203,
    /// A stream ended early (a file shrank while being uploaded, a short download).
    NORMAN_ERROR_TRUNCATED = 204,
    /// A stream is larger than allowed.
    NORMAN_ERROR_OVERSIZE = 205,
    /// The 256 GiB keystream of one pairing would be passed; nothing past it was sent.
    NORMAN_ERROR_KEYSTREAM_EXHAUSTED = 206,
    /// The receiver found the wrong authentication header.
    NORMAN_ERROR_AUTH_HEADER_MISMATCH = 207,
    /// The checksums of sender and receiver differ.
    NORMAN_ERROR_CHECKSUM_MISMATCH = 208,
    /// A peer broke the messaging or framing protocol (malformed frame, unknown message type, bad
    /// auth fields); the connection is closed.
    NORMAN_ERROR_PROTOCOL = 209,
    /// A message failed the check of an auth layer (wrong secret or key, stale or replayed message).
    NORMAN_ERROR_MSG_AUTH = 210,
    /// A message could not be decrypted by a cipher layer (wrong key, missing or bad nonce field).
    NORMAN_ERROR_DECRYPT = 211,
    /// The peer answered ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED; where the call has a reply
    /// out-parameter, the reply is still handed out (free it as a successful one).
    NORMAN_ERROR_MSG_REMOTE = 212,
    /// A Rust panic was caught at the boundary (a bug; the handle may be unusable, nothing crashed).
    NORMAN_ERROR_PANIC = 900,
    /// An internal error (the runtime could not start, a thread could not be spawned).
    NORMAN_ERROR_INTERNAL = 901,
}

pub use norman_result::*;

impl norman_result {
    pub(crate) fn from_code(code: i32) -> Option<Self> {
        ALL_RESULTS.iter().copied().find(|r| *r as i32 == code)
    }

    pub(crate) fn name(self) -> &'static CStr {
        match self {
            NORMAN_OK => c"NORMAN_OK: success",
            NORMAN_ERROR_NULL_ARGUMENT => c"NORMAN_ERROR_NULL_ARGUMENT: a required pointer was NULL",
            NORMAN_ERROR_INVALID_ARGUMENT => c"NORMAN_ERROR_INVALID_ARGUMENT: an argument is out of range",
            NORMAN_ERROR_INVALID_UTF8 => c"NORMAN_ERROR_INVALID_UTF8: a string is not UTF-8",
            NORMAN_ERROR_INVALID_JSON => c"NORMAN_ERROR_INVALID_JSON: a JSON argument does not parse",
            NORMAN_ERROR_INVALID_CONFIG => c"NORMAN_ERROR_INVALID_CONFIG: invalid configuration",
            NORMAN_ERROR_INVALID_PAIRING => c"NORMAN_ERROR_INVALID_PAIRING: invalid pairing field",
            NORMAN_ERROR_STATE => c"NORMAN_ERROR_STATE: the handle is finished, failed or aborted",
            NORMAN_ERROR_WRONG_THREAD => {
                c"NORMAN_ERROR_WRONG_THREAD: blocking call on the callback thread or a runtime worker"
            }
            NORMAN_ERROR_BUSY => c"NORMAN_ERROR_BUSY: the handle is in use by another thread",
            NORMAN_ERROR_CANCELLED => c"NORMAN_ERROR_CANCELLED: the operation was cancelled",
            NORMAN_NO_EVENT => c"NORMAN_NO_EVENT: no event within the timeout",
            NORMAN_ERROR_BUFFER_TOO_SMALL => c"NORMAN_ERROR_BUFFER_TOO_SMALL: the output buffer is too small",
            NORMAN_CLOSED => c"NORMAN_CLOSED: the connection is closed",
            NORMAN_ERROR_INVALID_BSON => c"NORMAN_ERROR_INVALID_BSON: not one valid BSON document",
            NORMAN_ERROR_HTTP_STATUS => c"NORMAN_ERROR_HTTP_STATUS: the server answered an error status",
            NORMAN_ERROR_HTTP_UNAUTHORIZED => c"NORMAN_ERROR_HTTP_UNAUTHORIZED: HTTP 401 or 403",
            NORMAN_ERROR_HTTP_NOT_FOUND => c"NORMAN_ERROR_HTTP_NOT_FOUND: HTTP 404",
            NORMAN_ERROR_DECODE => c"NORMAN_ERROR_DECODE: a response could not be decoded",
            NORMAN_ERROR_CONNECT => c"NORMAN_ERROR_CONNECT: could not connect",
            NORMAN_ERROR_TIMEOUT => c"NORMAN_ERROR_TIMEOUT: timed out",
            NORMAN_ERROR_IO => c"NORMAN_ERROR_IO: I/O error",
            NORMAN_ERROR_NETWORK => c"NORMAN_ERROR_NETWORK: network error",
            NORMAN_ERROR_TRUNCATED => c"NORMAN_ERROR_TRUNCATED: a stream ended early",
            NORMAN_ERROR_OVERSIZE => c"NORMAN_ERROR_OVERSIZE: a stream is too large",
            NORMAN_ERROR_KEYSTREAM_EXHAUSTED => {
                c"NORMAN_ERROR_KEYSTREAM_EXHAUSTED: past the 256 GiB keystream"
            }
            NORMAN_ERROR_AUTH_HEADER_MISMATCH => {
                c"NORMAN_ERROR_AUTH_HEADER_MISMATCH: wrong authentication header"
            }
            NORMAN_ERROR_CHECKSUM_MISMATCH => c"NORMAN_ERROR_CHECKSUM_MISMATCH: checksums differ",
            NORMAN_ERROR_PROTOCOL => c"NORMAN_ERROR_PROTOCOL: the peer broke the protocol",
            NORMAN_ERROR_MSG_AUTH => c"NORMAN_ERROR_MSG_AUTH: message authentication failed",
            NORMAN_ERROR_DECRYPT => c"NORMAN_ERROR_DECRYPT: the message could not be decrypted",
            NORMAN_ERROR_MSG_REMOTE => c"NORMAN_ERROR_MSG_REMOTE: the peer answered an error",
            NORMAN_ERROR_PANIC => c"NORMAN_ERROR_PANIC: internal panic caught at the boundary",
            NORMAN_ERROR_INTERNAL => c"NORMAN_ERROR_INTERNAL: internal error",
        }
    }
}

pub(crate) const ALL_RESULTS: [norman_result; 34] = [
    NORMAN_OK,
    NORMAN_ERROR_NULL_ARGUMENT,
    NORMAN_ERROR_INVALID_ARGUMENT,
    NORMAN_ERROR_INVALID_UTF8,
    NORMAN_ERROR_INVALID_JSON,
    NORMAN_ERROR_INVALID_CONFIG,
    NORMAN_ERROR_INVALID_PAIRING,
    NORMAN_ERROR_STATE,
    NORMAN_ERROR_WRONG_THREAD,
    NORMAN_ERROR_BUSY,
    NORMAN_ERROR_CANCELLED,
    NORMAN_NO_EVENT,
    NORMAN_ERROR_BUFFER_TOO_SMALL,
    NORMAN_CLOSED,
    NORMAN_ERROR_INVALID_BSON,
    NORMAN_ERROR_HTTP_STATUS,
    NORMAN_ERROR_HTTP_UNAUTHORIZED,
    NORMAN_ERROR_HTTP_NOT_FOUND,
    NORMAN_ERROR_DECODE,
    NORMAN_ERROR_CONNECT,
    NORMAN_ERROR_TIMEOUT,
    NORMAN_ERROR_IO,
    NORMAN_ERROR_NETWORK,
    NORMAN_ERROR_TRUNCATED,
    NORMAN_ERROR_OVERSIZE,
    NORMAN_ERROR_KEYSTREAM_EXHAUSTED,
    NORMAN_ERROR_AUTH_HEADER_MISMATCH,
    NORMAN_ERROR_CHECKSUM_MISMATCH,
    NORMAN_ERROR_PROTOCOL,
    NORMAN_ERROR_MSG_AUTH,
    NORMAN_ERROR_DECRYPT,
    NORMAN_ERROR_MSG_REMOTE,
    NORMAN_ERROR_PANIC,
    NORMAN_ERROR_INTERNAL,
];

/// An error on its way out through the boundary: a code and a message (never a secret: messages
/// come from [`crate::Error`], which never holds one, or from this layer).
#[derive(Debug, Clone)]
pub(crate) struct FfiError {
    pub code: norman_result,
    pub message: String,
}

pub(crate) type FfiResult<T = ()> = std::result::Result<T, FfiError>;

impl FfiError {
    pub fn new(code: norman_result, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    pub fn cancelled() -> Self {
        Self::new(NORMAN_ERROR_CANCELLED, "the operation was cancelled")
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(NORMAN_ERROR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::InvalidArgument => NORMAN_ERROR_INVALID_ARGUMENT,
            ErrorKind::InvalidConfig => NORMAN_ERROR_INVALID_CONFIG,
            ErrorKind::InvalidPairing => NORMAN_ERROR_INVALID_PAIRING,
            ErrorKind::Connect => NORMAN_ERROR_CONNECT,
            ErrorKind::Timeout => NORMAN_ERROR_TIMEOUT,
            ErrorKind::Io => NORMAN_ERROR_IO,
            ErrorKind::KeystreamExhausted => NORMAN_ERROR_KEYSTREAM_EXHAUSTED,
            ErrorKind::AuthHeaderMismatch => NORMAN_ERROR_AUTH_HEADER_MISMATCH,
            ErrorKind::Truncated => NORMAN_ERROR_TRUNCATED,
            ErrorKind::Oversize => NORMAN_ERROR_OVERSIZE,
            ErrorKind::ChecksumMismatch => NORMAN_ERROR_CHECKSUM_MISMATCH,
            ErrorKind::State => NORMAN_ERROR_STATE,
            ErrorKind::Http => match e.http_status() {
                Some(401 | 403) => NORMAN_ERROR_HTTP_UNAUTHORIZED,
                Some(404) => NORMAN_ERROR_HTTP_NOT_FOUND,
                _ => NORMAN_ERROR_HTTP_STATUS,
            },
            ErrorKind::Network => NORMAN_ERROR_NETWORK,
            ErrorKind::Decode => NORMAN_ERROR_DECODE,
            ErrorKind::Protocol => NORMAN_ERROR_PROTOCOL,
            ErrorKind::Decrypt => NORMAN_ERROR_DECRYPT,
            ErrorKind::MsgAuth => NORMAN_ERROR_MSG_AUTH,
            ErrorKind::Remote => NORMAN_ERROR_MSG_REMOTE,
            ErrorKind::Closed => NORMAN_CLOSED,
        };
        FfiError { code, message: e.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
}

/// The calling thread's last error message, or NULL (see `norman_last_error`).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}

/// Runs the body of an exported function: a panic becomes `NORMAN_ERROR_PANIC`, an error its code,
/// and the message of either becomes this thread's last error.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> norman_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NORMAN_OK,
        Ok(Err(e)) => {
            if e.code != NORMAN_NO_EVENT {
                log::debug!(target: "norman::ffi", "call failed: {}", e.message);
            }
            set_last_error(&e.message);
            e.code
        }
        Err(_) => {
            set_last_error("internal panic caught at the C boundary");
            NORMAN_ERROR_PANIC
        }
    }
}

/// Like [`guard`] for functions that cannot fail in a way the caller can act on (free functions,
/// getters returning a value): a panic is swallowed and `fallback` returned.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn null(name: &'static str) -> FfiError {
    FfiError::new(NORMAN_ERROR_NULL_ARGUMENT, format!("`{name}` is NULL"))
}

/// A borrowed handle or struct argument.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` for `'a`.
pub(crate) unsafe fn arg<'a, T>(ptr: *const T, name: &'static str) -> FfiResult<&'a T> {
    // SAFETY: the caller guarantees a non-NULL pointer is valid.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(name))
}

/// A mutable borrowed handle.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` used by nobody else for `'a`.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &'static str) -> FfiResult<&'a mut T> {
    // SAFETY: as above.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// A borrowed byte buffer: `len == 0` is an empty slice whatever `ptr` is; otherwise `ptr` must not be
/// NULL and `len` must fit a slice.
///
/// # Safety
/// A non-NULL `ptr` with `len > 0` points to `len` readable bytes for `'a`.
pub(crate) unsafe fn arg_bytes<'a>(ptr: *const u8, len: usize, name: &'static str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(name));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!("`{name}` length {len} is too large")));
    }
    // SAFETY: non-NULL, length checked, validity guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A writable caller buffer with the same rules as [`arg_bytes`], except that `len` must be non-zero.
///
/// # Safety
/// A non-NULL `ptr` points to `len` writable bytes for `'a`.
pub(crate) unsafe fn arg_buf<'a>(ptr: *mut u8, len: usize, name: &'static str) -> FfiResult<&'a mut [u8]> {
    if ptr.is_null() {
        return Err(null(name));
    }
    if len == 0 {
        return Err(FfiError::invalid(format!("`{name}` has zero capacity")));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!("`{name}` length {len} is too large")));
    }
    // SAFETY: as above.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A borrowed NUL-terminated UTF-8 string.
///
/// # Safety
/// A non-NULL `ptr` points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL, NUL-terminated by contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes)
        .map_err(|_| FfiError::new(NORMAN_ERROR_INVALID_UTF8, format!("`{name}` is not valid UTF-8")))
}

/// An optional string: NULL is `None`.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn opt_str<'a>(ptr: *const c_char, name: &'static str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(ptr, name) }.map(Some)
    }
}

/// An output parameter, checked for NULL before any work, written only on success.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// A non-NULL `ptr` points to writable storage for a `T`.
    pub unsafe fn new(ptr: *mut T, name: &'static str) -> FfiResult<Self> {
        NonNull::new(ptr).map(Out).ok_or_else(|| null(name))
    }

    pub fn write(self, value: T) {
        // SAFETY: checked non-NULL in `new`; writability is the caller's contract. `write` does not
        // drop the old (possibly uninitialised) value.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// A heap handle handed to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back a handle given out by [`into_handle`]; NULL is `None`.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] and is not used again.
pub(crate) unsafe fn take_handle<T>(ptr: *mut T) -> Option<Box<T>> {
    // SAFETY: per contract the pointer came from Box::into_raw.
    (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
}
