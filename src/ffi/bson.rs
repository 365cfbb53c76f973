//! BSON documents from C: owned documents received from a connection (`norman_bson_doc`), and the
//! conversions to and from relaxed Extended JSON (key order kept). The connections and listeners are
//! in `bson_conn`. Documents follow the BSON specification (the `bson` crate's reading): 0x11 is a
//! Timestamp, printed as `{"$timestamp":...}`.

use std::ffi::c_char;

use super::boundary::*;
use super::memory::{bytes_out, string_out};
use crate::bson_frame::{from_relaxed_extjson, to_relaxed_extjson, Dialect, Limits, DEFAULT_MAX_BYTES};
use crate::error::Error;

/// One BSON document (opaque), owned by the caller: from `norman_bson_recv`.
pub struct norman_bson_doc {
    pub(crate) bytes: Box<[u8]>,
}

/// The limits of a connection or listener from the caller's `max_doc` (0: 16 MiB).
pub(crate) fn limits(max_doc: usize) -> FfiResult<Limits> {
    let max_bytes = match max_doc {
        0 => DEFAULT_MAX_BYTES,
        n if n > i32::MAX as usize => {
            return Err(FfiError::invalid(format!("max_doc {n} is above 2 GiB - 1, BSON's largest document")))
        }
        n if n < 5 => {
            return Err(FfiError::invalid(format!("max_doc {n}: a document takes at least 5 bytes")))
        }
        n => n as u32,
    };
    Ok(Limits { max_bytes, ..Limits::default() })
}

/// Maps the errors of the BSON layer: a length prefix below 5 (or negative) is the peer breaking
/// the framing (NORMAN_ERROR_PROTOCOL; the crate calls it a decode error), a bad document body is
/// NORMAN_ERROR_INVALID_BSON; the rest maps as everywhere (a prefix above the limit is OVERSIZE, a
/// stream out of step after a bad frame is STATE).
pub(crate) fn bson_error(e: Error) -> FfiError {
    match &e {
        Error::FrameLength { length, max } if *length <= i64::from(*max) => {
            FfiError::new(NORMAN_ERROR_PROTOCOL, format!("{e} (a BSON length prefix is at least 5)"))
        }
        Error::Decode { .. } => FfiError::new(NORMAN_ERROR_INVALID_BSON, e.to_string()),
        Error::FrameStreamBroken => FfiError::new(
            NORMAN_ERROR_STATE,
            format!("{e}: an earlier frame was truncated or mis-sized; close the connection"),
        ),
        _ => FfiError::from(e),
    }
}

/// The bytes of a received document, borrowed from it.
///
/// Ownership: `*data` points into `d` and stays valid until `norman_bson_doc_free(d)`; `*len` is at
/// least 5. Threads: any thread holding the document.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_doc_data(
    d: *const norman_bson_doc,
    data: *mut *const u8,
    len: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let d = unsafe { arg(d, "d") }?;
        let data = unsafe { Out::new(data, "data") }?;
        let len = unsafe { Out::new(len, "len") }?;
        data.write(d.bytes.as_ptr());
        len.write(d.bytes.len());
        Ok(())
    })
}

/// Frees a document from `norman_bson_recv`. NULL is a no-op.
///
/// Ownership: consumes `d` (pointers from `norman_bson_doc_data` die with it). Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_doc_free(d: *mut norman_bson_doc) {
    // SAFETY: the pointer came from norman_bson_recv and is not used again.
    guard_value((), || drop(unsafe { take_handle(d) }))
}

/// One line of relaxed Extended JSON for the document `doc` (exactly one document of `len` bytes,
/// up to 2 GiB - 1, nested at most 100 deep; else NORMAN_ERROR_INVALID_BSON, also for len 0).
/// Key order is kept; binary is `{"$binary":{"base64":..,"subType":..}}`, dates `{"$date":..}`,
/// 0x11 `{"$timestamp":{"t":..,"i":..}}`.
///
/// Ownership: `doc` is borrowed for the call; `*json_out` receives a new NUL-terminated string:
/// free it with `norman_string_free`. Threads: any thread (no client needed).
#[no_mangle]
pub unsafe extern "C" fn norman_bson_to_json(
    doc: *const u8,
    len: usize,
    json_out: *mut *mut c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL and length checked; validity is the caller's contract.
        let bytes = unsafe { arg_bytes(doc, len, "doc") }?;
        let out = unsafe { Out::new(json_out, "json_out") }?;
        let any_size = Limits { max_bytes: i32::MAX as u32, ..Limits::default() };
        let doc = any_size.validate(bytes).map_err(|e| match e {
            Error::FrameLength { .. } => FfiError::new(NORMAN_ERROR_INVALID_BSON, e.to_string()),
            e => bson_error(e),
        })?;
        let json = to_relaxed_extjson(doc, Dialect::Standard).map_err(bson_error)?;
        out.write(string_out(json));
        Ok(())
    })
}

/// The BSON document written as relaxed (or canonical) Extended JSON in `json`: one JSON object
/// (else NORMAN_ERROR_INVALID_JSON, with the reason in norman_last_error), key order kept.
///
/// Ownership: `json` is borrowed for the call; `*doc_out` / `*len_out` receive a new buffer (the
/// whole document, length prefix included): free it with `norman_bytes_free(*doc_out, *len_out)`.
/// Threads: any thread (no client needed).
#[no_mangle]
pub unsafe extern "C" fn norman_bson_from_json(
    json: *const c_char,
    doc_out: *mut *mut u8,
    len_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; a NUL-terminated string by contract.
        let json = unsafe { arg_str(json, "json") }?;
        let doc_out = unsafe { Out::new(doc_out, "doc_out") }?;
        let len_out = unsafe { Out::new(len_out, "len_out") }?;
        let doc = json_document(json)?;
        let (ptr, len) = bytes_out(doc.into_bytes());
        doc_out.write(ptr);
        len_out.write(len);
        Ok(())
    })
}

/// Parses relaxed Extended JSON into a document; what does not parse is NORMAN_ERROR_INVALID_JSON.
pub(crate) fn json_document(json: &str) -> FfiResult<crate::bson_frame::RawDocumentBuf> {
    from_relaxed_extjson(json, Dialect::Standard).map_err(|e| match e {
        Error::InvalidArgument(message) => FfiError::new(NORMAN_ERROR_INVALID_JSON, message),
        e => bson_error(e),
    })
}
