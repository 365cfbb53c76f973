//! `norman_upload`: the streaming upload (open on a pairing, write, finish or abort), and the
//! whole-file push of an asset or an input (allocate, stream, complete).

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::client::{norman_client, start, ClientShared, Mode};
use super::events::{
    norman_callback, norman_event_kind, norman_progress_callback, norman_userdata_free, Completion, Outcome,
};
use crate::socket::{SocketPairingResponse, UploadSummary};
use crate::transfer::{FileTarget, Upload, UploadTarget, Uploads};

/// What a target names: a model asset, an invocation input, or (downloads only) an invocation output.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum norman_target_kind {
    /// A model asset.
    NORMAN_TARGET_ASSET = 1,
    /// An invocation input.
    NORMAN_TARGET_INPUT = 2,
    /// An invocation output (downloads only).
    NORMAN_TARGET_OUTPUT = 3,
}

/// The file an upload or a download is for. Strings are borrowed UTF-8 and copied during the call.
#[repr(C)]
pub struct norman_target {
    /// A `norman_target_kind` value.
    pub kind: i32,
    /// Id of the account.
    pub account_id: *const c_char,
    /// Id of the model.
    pub model_id: *const c_char,
    /// Invocation of an input or output; ignored (may be NULL) for an asset.
    pub invocation_id: *const c_char,
    /// The asset, input or output id.
    pub id: *const c_char,
}

/// A socket pairing as `file-push/socket/pair/asset` or `.../input` returns it. Strings are borrowed UTF-8 and copied
/// during the call; the key, nonce and header are standard base64 (secrets: never logged).
#[repr(C)]
pub struct norman_pairing {
    /// Id of the pairing.
    pub pairing_id: *const c_char,
    /// Host of the upload socket.
    pub host: *const c_char,
    /// 1-65535; anything else is NORMAN_ERROR_INVALID_PAIRING.
    pub port: i64,
    /// ChaCha20 key (base64).
    pub encryption_key: *const c_char,
    /// ChaCha20 nonce (base64).
    pub nonce: *const c_char,
    /// Bytes the plaintext stream starts with, before the file (base64).
    pub authentication_header: *const c_char,
}

/// One streaming upload (opaque).
pub struct norman_upload {
    shared: Arc<ClientShared>,
    state: Mutex<UploadState>,
    cancel: CancellationToken,
}

enum UploadState {
    Open(Box<Upload>),
    Finished(UploadSummary),
    Failed,
    Aborted,
}

/// # Safety
/// `target` is NULL or points to a valid `norman_target` whose strings are NULL or NUL-terminated.
pub(crate) unsafe fn read_target(target: *const norman_target) -> FfiResult<FileTarget> {
    // SAFETY: forwarded contract.
    let t = unsafe { arg(target, "target") }?;
    let s = |p, name| unsafe { arg_str(p, name) }.map(str::to_owned);
    let account_id = s(t.account_id, "target.account_id")?;
    let model_id = s(t.model_id, "target.model_id")?;
    let id = s(t.id, "target.id")?;
    Ok(match t.kind {
        1 => FileTarget::Asset { account_id, model_id, asset_id: id },
        2 => FileTarget::Input {
            account_id,
            model_id,
            invocation_id: s(t.invocation_id, "target.invocation_id")?,
            input_id: id,
        },
        3 => FileTarget::Output {
            account_id,
            model_id,
            invocation_id: s(t.invocation_id, "target.invocation_id")?,
            output_id: id,
        },
        other => return Err(FfiError::invalid(format!("target.kind {other} is not a norman_target_kind"))),
    })
}

/// # Safety
/// As [`read_target`].
unsafe fn read_upload_target(target: *const norman_target) -> FfiResult<UploadTarget> {
    // SAFETY: forwarded contract.
    UploadTarget::try_from(unsafe { read_target(target) }?)
        .map_err(|_| FfiError::invalid("outputs cannot be uploaded (target.kind is NORMAN_TARGET_OUTPUT)"))
}

/// # Safety
/// `pairing` is NULL or points to a valid `norman_pairing` whose strings are NULL or NUL-terminated.
unsafe fn read_pairing(pairing: *const norman_pairing) -> FfiResult<SocketPairingResponse> {
    // SAFETY: forwarded contract.
    let p = unsafe { arg(pairing, "pairing") }?;
    let s = |ptr, name| unsafe { arg_str(ptr, name) }.map(str::to_owned);
    Ok(SocketPairingResponse {
        pairing_id: s(p.pairing_id, "pairing.pairing_id")?,
        host: s(p.host, "pairing.host")?,
        port: p.port,
        encryption_key: s(p.encryption_key, "pairing.encryption_key")?,
        nonce: s(p.nonce, "pairing.nonce")?,
        authentication_header: s(p.authentication_header, "pairing.authentication_header")?,
    })
}

fn open(client: &norman_client, pairing: SocketPairingResponse) -> FfiResult<norman_upload> {
    let shared = client.shared();
    let upload = shared.block_on(None, async { Ok(Upload::open(&pairing, &shared.config).await?) })?;
    Ok(handle(client, upload))
}

fn handle(client: &norman_client, upload: Upload) -> norman_upload {
    norman_upload {
        shared: client.shared().clone(),
        state: Mutex::new(UploadState::Open(Box::new(upload))),
        cancel: CancellationToken::new(),
    }
}

/// Opens an upload stream on a pairing: validates every field (NORMAN_ERROR_INVALID_PAIRING names
/// the first bad one; an authentication header must decode to at least 16 bytes, PROTOCOL.md §4),
/// connects (NORMAN_ERROR_CONNECT, NORMAN_ERROR_TIMEOUT) and queues the encrypted authentication
/// header. `norman_upload_finish` then returns the checksum; completing the transfer
/// with the backend (`file-push/socket/complete`) is the caller's job.
///
/// Ownership: `pairing` and its strings are borrowed and copied; `*upload_out` receives a new handle,
/// free it with `norman_upload_free`.
/// Threads: blocking; not on the callback thread or a runtime worker (NORMAN_ERROR_WRONG_THREAD).
#[no_mangle]
pub unsafe extern "C" fn norman_upload_open(
    client: *const norman_client,
    pairing: *const norman_pairing,
    upload_out: *mut *mut norman_upload,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let pairing = unsafe { read_pairing(pairing) }?;
        let out = unsafe { Out::new(upload_out, "upload_out") }?;
        out.write(into_handle(open(client, pairing)?));
        Ok(())
    })
}

/// Like `norman_upload_open`, with the pairing as the JSON object the backend returned
/// (NORMAN_ERROR_INVALID_JSON when it does not parse or lacks a field).
///
/// Ownership: `pairing_json` (UTF-8, NUL-terminated) is borrowed; `*upload_out` receives a new
/// handle, free it with `norman_upload_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_upload_open_json(
    client: *const norman_client,
    pairing_json: *const c_char,
    upload_out: *mut *mut norman_upload,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let json = unsafe { arg_str(pairing_json, "pairing_json") }?;
        let out = unsafe { Out::new(upload_out, "upload_out") }?;
        let pairing: SocketPairingResponse = serde_json::from_str(json)
            .map_err(|e| FfiError::new(NORMAN_ERROR_INVALID_JSON, format!("pairing JSON: {e}")))?;
        out.write(into_handle(open(client, pairing)?));
        Ok(())
    })
}

/// Allocates an upload socket for `target` and a file of `size` bytes
/// (`file-push/socket/pair/asset|input`) and opens the stream on it. `norman_upload_finish` then also
/// completes the transfer with the backend, which checks size and checksum.
///
/// Ownership: `target` is borrowed and copied; `*upload_out` receives a new handle, free it with
/// `norman_upload_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_upload_begin(
    client: *const norman_client,
    target: *const norman_target,
    size: u64,
    upload_out: *mut *mut norman_upload,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let target = unsafe { read_upload_target(target) }?;
        let out = unsafe { Out::new(upload_out, "upload_out") }?;
        let shared = client.shared();
        let http = shared.http()?;
        let upload = shared
            .block_on(None, async { Ok(Uploads::new(&http, &shared.config).begin(&target, size).await?) })?;
        out.write(into_handle(handle(client, upload)));
        Ok(())
    })
}

/// Sends `len` bytes: hashed and encrypted straight into the send buffer (the only copy), handed to
/// the socket whenever a chunk is full. Blocks while the receiver is slower (backpressure), up to the
/// configured timeout without progress. `len == 0` is a no-op (then `data` may be NULL); `data == NULL`
/// with `len > 0` is NORMAN_ERROR_NULL_ARGUMENT. After an error the upload is failed: later writes
/// and finish return NORMAN_ERROR_STATE, and the receiver sees a reset, never a short file.
///
/// Ownership: `data` is borrowed for the call only.
/// Threads: blocking; one thread at a time per upload (NORMAN_ERROR_BUSY otherwise); not on the
/// callback thread or a runtime worker. `norman_upload_abort` from another thread interrupts it
/// (NORMAN_ERROR_CANCELLED).
#[no_mangle]
pub unsafe extern "C" fn norman_upload_write(
    upload: *const norman_upload,
    data: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let upload = unsafe { arg(upload, "upload") }?;
        let data = unsafe { arg_bytes(data, len, "data") }?;
        let mut state = lock(upload)?;
        let UploadState::Open(stream) = &mut *state else {
            return Err(state_error(&state));
        };
        if data.is_empty() {
            return Ok(());
        }
        let result = upload.shared.block_on(Some(&upload.cancel), async { Ok(stream.write(data).await?) });
        if let Err(e) = &result {
            *state =
                if e.code == NORMAN_ERROR_CANCELLED { UploadState::Aborted } else { UploadState::Failed };
        }
        result
    })
}

/// Sends what is buffered, closes the stream (the end of the file for the receiver) and writes the
/// xxh3-64 checksum of the bytes written to `*checksum_out` (may be NULL). For an upload from
/// `norman_client_upload_begin` it also completes the transfer with the backend
/// (NORMAN_ERROR_HTTP_* when the backend rejects it). A second finish returns NORMAN_ERROR_STATE.
///
/// Ownership: nothing is transferred; the handle still needs `norman_upload_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_upload_finish(
    upload: *const norman_upload,
    checksum_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above; checksum_out may be NULL.
        let upload = unsafe { arg(upload, "upload") }?;
        upload.shared.check_blocking_allowed()?;
        let mut state = lock(upload)?;
        let stream = match std::mem::replace(&mut *state, UploadState::Failed) {
            UploadState::Open(stream) => stream,
            other => {
                let e = state_error(&other);
                *state = other;
                return Err(e);
            }
        };
        let summary = upload.shared.block_on(Some(&upload.cancel), async { Ok(stream.finish().await?) });
        match summary {
            Ok(summary) => {
                *state = UploadState::Finished(summary);
                if !checksum_out.is_null() {
                    // SAFETY: non-NULL and writable by contract.
                    unsafe { checksum_out.write(summary.checksum.0) };
                }
                Ok(())
            }
            Err(e) => {
                if e.code == NORMAN_ERROR_CANCELLED {
                    *state = UploadState::Aborted;
                }
                Err(e)
            }
        }
    })
}

/// Abandons the upload: a write or finish blocked in another thread returns NORMAN_ERROR_CANCELLED,
/// the connection is reset so the receiver keeps nothing. Aborting twice is fine; aborting a
/// finished upload is NORMAN_ERROR_STATE.
///
/// Ownership: nothing is transferred; the handle still needs `norman_upload_free`.
/// Threads: any thread, including the callback thread, concurrently with a blocked write.
#[no_mangle]
pub unsafe extern "C" fn norman_upload_abort(upload: *const norman_upload) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let upload = unsafe { arg(upload, "upload") }?;
        // Cancel first: a write or finish blocked in another thread holds the state lock, so waiting
        // for it would wait out the blocked call; and one that finds the lock taken by us below
        // must see the cancellation, not report BUSY.
        upload.cancel.cancel();
        if let Ok(mut state) = upload.state.try_lock() {
            match *state {
                UploadState::Finished(_) => {
                    return Err(FfiError::new(NORMAN_ERROR_STATE, "the upload is already finished"))
                }
                // Dropping the stream resets the connection: the receiver keeps nothing.
                UploadState::Open(_) => *state = UploadState::Aborted,
                UploadState::Failed | UploadState::Aborted => {}
            }
        }
        Ok(())
    })
}

/// Bytes accepted by `norman_upload_write` so far (0 for NULL).
///
/// Ownership: `upload` is borrowed. Threads: any thread (0 while another thread is writing).
#[no_mangle]
pub unsafe extern "C" fn norman_upload_bytes_written(upload: *const norman_upload) -> u64 {
    guard_value(0, || {
        // SAFETY: NULL or a live handle.
        let Some(upload) = (unsafe { upload.as_ref() }) else { return 0 };
        match upload.state.try_lock().as_deref() {
            Ok(UploadState::Open(stream)) => stream.summary().bytes,
            Ok(UploadState::Finished(summary)) => summary.bytes,
            _ => 0,
        }
    })
}

/// Frees an upload; an unfinished one is aborted (the receiver sees a reset). NULL is a no-op.
///
/// Ownership: consumes `upload`. Threads: any thread, once, when no other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn norman_upload_free(upload: *mut norman_upload) {
    // SAFETY: the pointer came from an open call and is not used again.
    guard_value((), || {
        if let Some(upload) = unsafe { take_handle(upload) } {
            // Dropping the stream needs the runtime context (socket deregistration).
            let _enter = upload.shared.handle.enter();
            drop(upload);
        }
    })
}

fn lock(upload: &norman_upload) -> FfiResult<std::sync::MutexGuard<'_, UploadState>> {
    match upload.state.try_lock() {
        Ok(state) => Ok(state),
        // An abort in progress holds the lock for a moment: that is a cancellation, not contention.
        Err(TryLockError::WouldBlock) if upload.cancel.is_cancelled() => {
            Err(FfiError::new(NORMAN_ERROR_CANCELLED, "the upload was aborted"))
        }
        Err(TryLockError::WouldBlock) => {
            Err(FfiError::new(NORMAN_ERROR_BUSY, "another thread is using this upload"))
        }
        Err(TryLockError::Poisoned(e)) => Ok(e.into_inner()),
    }
}

fn state_error(state: &UploadState) -> FfiError {
    let what = match state {
        UploadState::Open(_) => "open",
        UploadState::Finished(_) => "already finished",
        UploadState::Failed => "failed (an earlier call returned an error)",
        UploadState::Aborted => "aborted",
    };
    let code =
        if matches!(state, UploadState::Aborted) { NORMAN_ERROR_CANCELLED } else { NORMAN_ERROR_STATE };
    FfiError::new(code, format!("the upload is {what}"))
}

/// Uploads the file at `path` for `target` in one call: allocate a socket, stream the file (read
/// straight into the send buffer), complete the transfer. `progress` (may be NULL) is called on the
/// calling thread with the bytes sent so far and the total, once per chunk. `*checksum_out` (may be
/// NULL) receives the xxh3-64 of the file.
///
/// Ownership: `target`, `path` are borrowed and copied; `userdata` is passed to `progress` only.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_push_file(
    client: *const norman_client,
    target: *const norman_target,
    path: *const c_char,
    progress: norman_progress_callback,
    userdata: *mut c_void,
    checksum_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: forwarded contract.
        let outcome = unsafe { push_file(client, target, path, progress, userdata, Mode::Blocking) }?;
        if !checksum_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { checksum_out.write(outcome.checksum) };
        }
        Ok(())
    })
}

/// Starts `norman_client_push_file` and returns at once with `*op_id_out` (may be NULL). Completion:
/// one NORMAN_EVENT_PUSH_FILE event (bytes, checksum) to `callback` on the client's callback thread,
/// or, when `callback` is NULL, to `norman_client_next_event`. `progress` (may be NULL) runs on the
/// callback thread, before the completion. Cancel with `norman_client_cancel`.
///
/// Ownership: `target` and `path` are borrowed and copied; `userdata` is the caller's, handed to the
/// callbacks and freed with `userdata_free` (may be NULL) exactly once after the completion was
/// delivered (or, when polled, when the event is freed), even when this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_push_file_async(
    client: *const norman_client,
    target: *const norman_target,
    path: *const c_char,
    progress: norman_progress_callback,
    callback: norman_callback,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
    op_id_out: *mut u64,
) -> norman_result {
    start(Completion { callback, userdata, userdata_free }, |completion| {
        let mode = Mode::Async { kind: norman_event_kind::NORMAN_EVENT_PUSH_FILE, completion, op_id_out };
        // SAFETY: forwarded contract.
        unsafe { push_file(client, target, path, progress, userdata, mode) }.map(drop)
    })
}

/// Both forms of push_file: map the arguments, run the core's whole-file upload.
///
/// # Safety
/// The pointers are NULL or valid as the exported functions document.
unsafe fn push_file(
    client: *const norman_client,
    target: *const norman_target,
    path: *const c_char,
    progress: norman_progress_callback,
    userdata: *mut c_void,
    mode: Mode,
) -> FfiResult<Outcome> {
    // SAFETY: forwarded contract.
    let client = unsafe { arg(client, "client") }?;
    let target = unsafe { read_upload_target(target) }?;
    let path = PathBuf::from(unsafe { arg_str(path, "path") }?);
    let shared = client.shared();
    let http = shared.http()?;
    let config = shared.config.clone();
    let progress = shared.progress_for(&mode, progress, userdata);
    shared.run(mode, async move {
        let report = move |sent, total| progress.report(sent, total);
        let summary = Uploads::new(&http, &config).push_file(&target, &path, report).await?;
        Ok(Outcome { bytes: summary.bytes, checksum: summary.checksum.0, ..Outcome::default() })
    })
}
