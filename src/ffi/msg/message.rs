//! `norman_msg`: an owned, received message and its getters.

use std::ffi::c_char;

use crate::ffi::boundary::*;
use crate::msg::packify::Value;
use crate::msg::Message;

/// A received message (opaque), owned by the caller unless said otherwise.
pub struct norman_msg {
    pub(crate) msg: Message,
}

pub(crate) fn msg_out(msg: Message) -> *mut norman_msg {
    into_handle(norman_msg { msg })
}

fn bytes_to(out_ptr: Out<*const u8>, out_len: Out<usize>, b: &[u8]) {
    out_ptr.write(b.as_ptr());
    out_len.write(b.len());
}

/// The message type (a NORMAN_MSG_* value or an application type 31-255); 255 for NULL.
///
/// Ownership: `m` is borrowed. Threads: any thread holding `m`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_type_of(m: *const norman_msg) -> u8 {
    // SAFETY: NULL or a live message.
    guard_value(255, || unsafe { m.as_ref() }.map_or(255, |m| m.msg.message_type.0))
}

/// The uri: `*uri` and `*len` receive a pointer and length (not NUL-terminated; a zero length may
/// come with any non-NULL pointer).
///
/// Ownership: borrowed from `m`, valid until it is freed. Threads: any thread holding `m`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_uri(
    m: *const norman_msg,
    uri: *mut *const u8,
    len: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let m = unsafe { arg(m, "msg") }?;
        let (p, l) = unsafe { (Out::new(uri, "uri")?, Out::new(len, "len")?) };
        bytes_to(p, l, &m.msg.uri);
        Ok(())
    })
}

/// The content: `*content` and `*len` receive a pointer and length (not NUL-terminated).
///
/// Ownership: borrowed from `m`, valid until it is freed. Threads: any thread holding `m`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_content(
    m: *const norman_msg,
    content: *mut *const u8,
    len: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let m = unsafe { arg(m, "msg") }?;
        let (p, l) = unsafe { (Out::new(content, "content")?, Out::new(len, "len")?) };
        bytes_to(p, l, &m.msg.content);
        Ok(())
    })
}

/// An auth field's value (what remains after the layers opened the message, e.g. "norman_rid",
/// or a field of a plain message). Absent, or not a byte string: NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: `name` borrowed; the value is borrowed from `m`, valid until it is freed.
/// Threads: any thread holding `m`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_auth_field(
    m: *const norman_msg,
    name: *const c_char,
    value: *mut *const u8,
    len: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let m = unsafe { arg(m, "msg") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let (p, l) = unsafe { (Out::new(value, "value")?, Out::new(len, "len")?) };
        match m.msg.auth.get(name) {
            Some(Value::Bytes(b) | Value::ByteArray(b)) => {
                bytes_to(p, l, b);
                Ok(())
            }
            Some(Value::Str(s)) => {
                bytes_to(p, l, s.as_bytes());
                Ok(())
            }
            Some(_) => Err(FfiError::invalid(format!("auth field {name:?} is not a byte string"))),
            None => Err(FfiError::invalid(format!("no auth field {name:?}"))),
        }
    })
}

/// Frees a message. NULL is a no-op. Never free a message borrowed from a call
/// (`norman_msg_call_message`).
///
/// Ownership: consumes `m`. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_free(m: *mut norman_msg) {
    // SAFETY: the pointer came from the library as an owned message and is not used again.
    guard_value((), || drop(unsafe { take_handle(m) }))
}
