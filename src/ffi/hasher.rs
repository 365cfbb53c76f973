//! `norman_hasher`: the Norman checksum (xxh3-64, seed 0) without a network, streaming or one-shot,
//! and its 16-hex-digit text form.

use std::ffi::c_char;

use super::boundary::*;
use crate::checksum::{Checksum, Hasher};

/// A streaming xxh3-64 hasher (opaque).
pub struct norman_hasher {
    inner: Hasher,
}

/// Length of a checksum's text form with its NUL: 16 lowercase hex digits + NUL.
pub const NORMAN_CHECKSUM_HEX_LEN: usize = 17;

/// Creates a hasher.
///
/// Ownership: `*hasher_out` receives a new handle, free it with `norman_hasher_free`.
/// Threads: any thread; a hasher is used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn norman_hasher_new(hasher_out: *mut *mut norman_hasher) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; writable by contract.
        let out = unsafe { Out::new(hasher_out, "hasher_out") }?;
        out.write(into_handle(norman_hasher { inner: Hasher::new() }));
        Ok(())
    })
}

/// Feeds `len` bytes (any chunking gives the same digest). `len == 0` is a no-op (`data` may then be
/// NULL); `data == NULL` with `len > 0` is NORMAN_ERROR_NULL_ARGUMENT.
///
/// Ownership: `data` is borrowed for the call. Threads: one thread at a time per hasher.
#[no_mangle]
pub unsafe extern "C" fn norman_hasher_update(
    hasher: *mut norman_hasher,
    data: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let hasher = unsafe { arg_mut(hasher, "hasher") }?;
        let data = unsafe { arg_bytes(data, len, "data") }?;
        hasher.inner.update(data);
        Ok(())
    })
}

/// Writes the digest of everything fed so far to `*digest_out`; the hasher can keep going.
///
/// Ownership: nothing is transferred. Threads: one thread at a time per hasher.
#[no_mangle]
pub unsafe extern "C" fn norman_hasher_digest(
    hasher: *const norman_hasher,
    digest_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let hasher = unsafe { arg(hasher, "hasher") }?;
        let out = unsafe { Out::new(digest_out, "digest_out") }?;
        out.write(hasher.inner.digest().0);
        Ok(())
    })
}

/// Frees a hasher. NULL is a no-op.
///
/// Ownership: consumes `hasher`. Threads: any thread, once.
#[no_mangle]
pub unsafe extern "C" fn norman_hasher_free(hasher: *mut norman_hasher) {
    // SAFETY: the pointer came from norman_hasher_new and is not used again.
    guard_value((), || drop(unsafe { take_handle(hasher) }))
}

/// One-shot digest of `len` bytes (same rules for `data` and `len` as `norman_hasher_update`).
///
/// Ownership: `data` is borrowed for the call. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_checksum(data: *const u8, len: usize, digest_out: *mut u64) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let data = unsafe { arg_bytes(data, len, "data") }?;
        let out = unsafe { Out::new(digest_out, "digest_out") }?;
        out.write(Checksum::of(data).0);
        Ok(())
    })
}

/// Writes the text form of a checksum (16 lowercase hex digits, what `file-push/socket/complete` and
/// `norman checksum` print) and a NUL into `out`: always exactly 17 bytes. A `capacity` below
/// NORMAN_CHECKSUM_HEX_LEN (17), 0 included, is NORMAN_ERROR_BUFFER_TOO_SMALL and writes nothing;
/// any larger one (SIZE_MAX included) is fine, only the first 17 bytes are touched.
///
/// Ownership: `out` is borrowed for the call. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_checksum_to_hex(
    checksum: u64,
    out: *mut c_char,
    capacity: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        if out.is_null() {
            return Err(FfiError::new(NORMAN_ERROR_NULL_ARGUMENT, "`out` is NULL"));
        }
        if capacity < NORMAN_CHECKSUM_HEX_LEN {
            return Err(FfiError::new(
                NORMAN_ERROR_BUFFER_TOO_SMALL,
                "a checksum needs 17 bytes (16 hex digits and a NUL)",
            ));
        }
        // Only the 17 bytes written are borrowed, so a generous capacity is never a huge slice.
        let buf = unsafe { arg_buf(out.cast::<u8>(), NORMAN_CHECKSUM_HEX_LEN, "out") }?;
        let hex = Checksum(checksum).to_hex();
        buf[..16].copy_from_slice(hex.as_bytes());
        buf[16] = 0;
        Ok(())
    })
}

/// Parses the text form of a checksum (exactly 16 hex digits, either case).
///
/// Ownership: `hex` is borrowed. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_checksum_from_hex(
    hex: *const c_char,
    checksum_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let hex = unsafe { arg_str(hex, "hex") }?;
        let out = unsafe { Out::new(checksum_out, "checksum_out") }?;
        out.write(hex.parse::<Checksum>()?.0);
        Ok(())
    })
}
