//! The C ABI of libnorman, declared in `include/norman.h` (generated from this module by cbindgen).
//!
//! One module per handle family (`config`; `client`: runtime and operations; `events`; `upload`;
//! `download`; `request`; `hasher`; `log`; `memory`: freeing returned strings and buffers; `bson`,
//! `bson_conn`: BSON frames) and one boundary module that every export goes through: panics are caught,
//! pointers and lengths checked before any slice is built, strings checked for UTF-8, and
//! [`crate::Error`] mapped to a stable `norman_result`. No business logic lives here: each function
//! converts its arguments and calls the core.
//!
//! Conventions (docs/DESIGN.md): every symbol starts with `norman_`; constructors write a new handle
//! to an `*_out` parameter, only on success; `norman_*_free(NULL)` is a no-op; every function states
//! ownership and threading in its doc comment, which the header carries.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // each function's contract is in its doc comment (the header)

mod boundary;
pub mod config;

// The order of these groups is the order of the header's sections (cbindgen follows it).
pub mod client;

pub mod events;

pub mod download;
pub mod hasher;
pub mod log;
pub mod request;
pub mod upload;

pub mod memory;
pub mod msg;

pub mod bson;
pub mod bson_conn;

use std::ffi::c_char;

pub use boundary::norman_result;

/// Version of the C ABI: bumped when a function's signature or a struct's layout changes
/// incompatibly. Compare `norman_abi_version()` with `NORMAN_ABI_VERSION` at startup.
pub const NORMAN_ABI_VERSION: u32 = 1;

/// The library version as "MAJOR.MINOR.PATCH", NUL-terminated.
///
/// Ownership: static storage; never free it. Threads: any thread.
#[no_mangle]
pub extern "C" fn norman_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version the library was built with (NORMAN_ABI_VERSION of its header).
///
/// Ownership: nothing is transferred. Threads: any thread.
#[no_mangle]
pub extern "C" fn norman_abi_version() -> u32 {
    NORMAN_ABI_VERSION
}

/// A static description of a result code ("NORMAN_ERROR_CONNECT: could not connect"); unknown codes
/// give "unknown norman_result".
///
/// Ownership: static storage; never free it. Threads: any thread.
#[no_mangle]
pub extern "C" fn norman_result_str(code: i32) -> *const c_char {
    boundary::guard_value(c"unknown norman_result".as_ptr(), || match norman_result::from_code(code) {
        Some(result) => result.name().as_ptr(),
        None => c"unknown norman_result".as_ptr(),
    })
}

/// The message of the last failed call on the calling thread (UTF-8, NUL-terminated, never
/// containing a secret), or NULL if no call failed yet on this thread.
///
/// Ownership: owned by the library; valid until the next failing libnorman call on this thread.
/// Threads: per thread: each thread sees its own last error.
#[no_mangle]
pub extern "C" fn norman_last_error() -> *const c_char {
    boundary::guard_value(std::ptr::null(), boundary::last_error_ptr)
}

#[cfg(test)]
mod tests {
    use super::boundary::*;

    #[test]
    fn result_codes_are_stable_and_named() {
        let expected = [
            (NORMAN_OK, 0),
            (NORMAN_ERROR_NULL_ARGUMENT, 1),
            (NORMAN_ERROR_CANCELLED, 10),
            (NORMAN_NO_EVENT, 11),
            (NORMAN_ERROR_HTTP_STATUS, 100),
            (NORMAN_ERROR_CONNECT, 200),
            (NORMAN_ERROR_CHECKSUM_MISMATCH, 208),
            (NORMAN_ERROR_PANIC, 900),
        ];
        for (result, code) in expected {
            assert_eq!(result as i32, code);
        }
        let mut seen = std::collections::HashSet::new();
        for r in ALL_RESULTS {
            assert!(seen.insert(r as i32), "{r:?} listed twice");
            assert_eq!(norman_result::from_code(r as i32), Some(r));
            let name = r.name().to_str().unwrap();
            assert!(name.starts_with(&format!("{r:?}:")), "{name}");
        }
    }

    #[test]
    fn a_panic_becomes_a_code_not_an_abort() {
        assert_eq!(guard(|| panic!("boom")), NORMAN_ERROR_PANIC);
        let message = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(message.to_str().unwrap().contains("panic"));
    }
}
