//! Freeing what the library hands out by value: NUL-terminated strings and byte buffers.

use std::ffi::{c_char, CString};

use super::boundary::guard_value;

/// A string for C, freed with `norman_string_free` (interior NULs become spaces).
pub(crate) fn string_out(s: String) -> *mut c_char {
    CString::new(s.replace('\0', " ")).unwrap_or_default().into_raw()
}

/// A byte buffer for C, freed with `norman_bytes_free(ptr, len)`.
#[allow(dead_code)] // used by the BSON functions
pub(crate) fn bytes_out(v: Vec<u8>) -> (*mut u8, usize) {
    let b = v.into_boxed_slice();
    let len = b.len();
    (Box::into_raw(b).cast::<u8>(), len)
}

/// Frees a string the library returned (norman_msg_node_peers_json, norman_bson_to_json, ...).
/// NULL is a no-op.
///
/// Ownership: consumes `s`, which must come from the library and not be used again.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: the pointer came from CString::into_raw in this library (the caller's contract).
    guard_value((), || drop(unsafe { CString::from_raw(s) }))
}

/// Frees a byte buffer the library returned, with the length it returned alongside it. NULL is a
/// no-op.
///
/// Ownership: consumes `p`, which must come from the library with exactly this `len` and not be
/// used again. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_bytes_free(p: *mut u8, len: usize) {
    if p.is_null() {
        return;
    }
    // SAFETY: the pointer and length came from `bytes_out` (a boxed slice), per the contract.
    guard_value((), || drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)) }))
}
