//! Freeing what the library hands out by value: NUL-terminated strings (`char **` outputs) and byte
//! buffers (`uint8_t **` + `size_t *` outputs). Each is allocated by Rust and must come back here,
//! never to the C allocator's `free`.

use std::ffi::{c_char, CString};

use super::boundary::guard_value;

/// Hands a string to C; free it with `norman_string_free`. An interior NUL (never produced by
/// the callers: JSON escapes it) is replaced by a space rather than cutting the string short.
pub(crate) fn string_out(s: String) -> *mut c_char {
    let text = CString::new(s).unwrap_or_else(|e| {
        let bytes = e.into_vec().into_iter().map(|b| if b == 0 { b' ' } else { b }).collect::<Vec<u8>>();
        CString::new(bytes).unwrap_or_default()
    });
    text.into_raw()
}

/// Hands bytes to C as (pointer, length); free them with `norman_bytes_free` and that length.
pub(crate) fn bytes_out(bytes: Vec<u8>) -> (*mut u8, usize) {
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    (Box::into_raw(boxed).cast::<u8>(), len)
}

/// Frees a string the library returned through a `char **` output (such as
/// `norman_bson_to_json`). NULL is a no-op.
///
/// Ownership: consumes `s`; it must come from libnorman and is not used again. Never pass a string
/// from another allocator, nor a borrowed one (`norman_last_error`, `norman_version`).
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: per contract `s` came from `CString::into_raw` in this library and is not used again.
    guard_value((), || drop(unsafe { CString::from_raw(s) }))
}

/// Frees a byte buffer the library returned through a `uint8_t **` output together with its
/// length (such as `norman_bson_from_json`); `len` must be that length. NULL is a no-op.
///
/// Ownership: consumes `p`; it must come from libnorman and is not used again.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_bytes_free(p: *mut u8, len: usize) {
    if p.is_null() {
        return;
    }
    // SAFETY: per contract (p, len) came from `bytes_out` (a boxed slice of exactly `len` bytes).
    guard_value((), || drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) }))
}
