//! `norman_download`: retrieving a model asset or an invocation input or output (the `retrieve` routes), pull
//! style into the caller's buffer, with borrowed chunks through a callback, or into a file
//! asynchronously.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::client::{norman_client, start, ClientShared, Mode};
use super::events::{norman_callback, norman_event_kind, norman_userdata_free, Completion, Outcome};
use super::upload::{norman_target, read_target};
use crate::transfer::{Downloads, VerifiedStream};

/// Receives one chunk of a download. `data` is borrowed for the duration of the call only. Return 0
/// to go on, anything else to stop (the call then returns NORMAN_ERROR_CANCELLED).
pub type norman_chunk_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, data: *const u8, len: usize) -> i32>;

/// A download in progress (opaque).
pub struct norman_download {
    shared: Arc<ClientShared>,
    state: Mutex<DownloadState>,
    content_length: Option<u64>,
    cancel: CancellationToken,
}

struct DownloadState {
    /// Hashes each chunk and checks the announced length at the end (the core's check).
    stream: VerifiedStream,
    /// What the last chunk still holds beyond what the caller's buffers took.
    pending: Bytes,
    /// The stream ended, verified: later reads give 0.
    ended: bool,
    /// The stream failed (truncated, reset, ...): later reads give the same error, never a 0 that
    /// would pass for the end of a whole file.
    failed: Option<FfiError>,
}

/// Starts retrieving `target` (`GET retrieve/asset|input|output/...`) and waits for the response
/// headers (NORMAN_ERROR_HTTP_NOT_FOUND when there is no such file).
///
/// Ownership: `target` is borrowed and copied; `*download_out` receives a new handle, free it with
/// `norman_download_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_retrieve_open(
    client: *const norman_client,
    target: *const norman_target,
    download_out: *mut *mut norman_download,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let target = unsafe { read_target(target) }?;
        let out = unsafe { Out::new(download_out, "download_out") }?;
        let shared = client.shared().clone();
        let http = shared.http()?;
        let stream = shared.block_on(None, async { Ok(Downloads::new(&http).open(&target).await?) })?;
        out.write(into_handle(norman_download {
            shared,
            content_length: stream.content_length(),
            state: Mutex::new(DownloadState { stream, pending: Bytes::new(), ended: false, failed: None }),
            cancel: CancellationToken::new(),
        }));
        Ok(())
    })
}

/// Copies up to `capacity` bytes of the download into `buffer` and writes their number to
/// `*read_out`; 0 means the end of the whole file (NORMAN_ERROR_TRUNCATED when the server sent fewer
/// bytes than it announced; after an error every later read returns it again). Blocks until some
/// bytes arrive. `capacity == 0` is
/// NORMAN_ERROR_INVALID_ARGUMENT (0 is reserved for the end). After `norman_download_cancel` (or
/// `norman_client_close`) every read returns NORMAN_ERROR_CANCELLED, at the end of the file too.
///
/// Ownership: `buffer` is borrowed for the call; the library keeps no pointer to it.
/// Threads: blocking; one thread at a time per download (NORMAN_ERROR_BUSY); not on the callback
/// thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_download_read(
    download: *const norman_download,
    buffer: *mut u8,
    capacity: usize,
    read_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let download = unsafe { arg(download, "download") }?;
        let buffer = unsafe { arg_buf(buffer, capacity, "buffer") }?;
        let out = unsafe { Out::new(read_out, "read_out") }?;
        let mut state = match download.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::WouldBlock) => {
                return Err(FfiError::new(NORMAN_ERROR_BUSY, "another thread is reading this download"))
            }
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
        };
        if download.cancel.is_cancelled() {
            return Err(FfiError::new(NORMAN_ERROR_CANCELLED, "the download was cancelled"));
        }
        download.shared.check_open()?;
        let state = &mut *state;
        while state.pending.is_empty() {
            if let Some(e) = &state.failed {
                return Err(e.clone());
            }
            if state.ended {
                out.write(0);
                return Ok(());
            }
            let stream = &mut state.stream;
            match download.shared.block_on(Some(&download.cancel), async { Ok(stream.next_chunk().await?) }) {
                Ok(Some(chunk)) => state.pending = chunk,
                Ok(None) => state.ended = true,
                Err(e) => {
                    // A cancel leaves the stream where it was (and later reads are CANCELLED
                    // anyway); any other error ends it.
                    if e.code != NORMAN_ERROR_CANCELLED {
                        state.failed = Some(e.clone());
                    }
                    return Err(e);
                }
            }
        }
        let n = state.pending.len().min(buffer.len());
        buffer[..n].copy_from_slice(&state.pending[..n]);
        let _ = state.pending.split_to(n);
        out.write(n);
        Ok(())
    })
}

/// The length the server announced, or UINT64_MAX when it gave none (or for NULL).
///
/// Ownership: `download` is borrowed. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_download_content_length(download: *const norman_download) -> u64 {
    // SAFETY: NULL or a live handle.
    guard_value(u64::MAX, || unsafe { download.as_ref() }.and_then(|d| d.content_length).unwrap_or(u64::MAX))
}

/// xxh3-64 of the bytes received so far (of the whole file once `norman_download_read` returned 0).
/// NORMAN_ERROR_BUSY while another thread reads.
///
/// Ownership: nothing is transferred. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_download_checksum(
    download: *const norman_download,
    checksum_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let download = unsafe { arg(download, "download") }?;
        let out = unsafe { Out::new(checksum_out, "checksum_out") }?;
        let state = download
            .state
            .try_lock()
            .map_err(|_| FfiError::new(NORMAN_ERROR_BUSY, "another thread is reading this download"))?;
        out.write(state.stream.checksum().0);
        Ok(())
    })
}

/// Interrupts a read blocked in another thread (it returns NORMAN_ERROR_CANCELLED); every later read
/// returns NORMAN_ERROR_CANCELLED too, even at the end of the file.
///
/// Ownership: nothing is transferred. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_download_cancel(download: *const norman_download) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg(download, "download") }?.cancel.cancel();
        Ok(())
    })
}

/// Frees a download (closing its connection if unfinished). NULL is a no-op.
///
/// Ownership: consumes `download`. Threads: any thread, once, when no other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn norman_download_free(download: *mut norman_download) {
    guard_value((), || {
        // SAFETY: the pointer came from norman_client_retrieve_open and is not used again.
        if let Some(download) = unsafe { take_handle(download) } {
            let _enter = download.shared.handle.enter();
            drop(download);
        }
    })
}

/// Retrieves `target`, calling `on_chunk` on the calling thread with each chunk as it arrives
/// (borrowed: no copy is made for you). `*checksum_out` (may be NULL) receives the xxh3-64 of the
/// whole file. A non-zero return from `on_chunk` stops with NORMAN_ERROR_CANCELLED.
///
/// Ownership: `target` is borrowed and copied; chunks are borrowed for one callback each.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_retrieve(
    client: *const norman_client,
    target: *const norman_target,
    on_chunk: norman_chunk_callback,
    userdata: *mut c_void,
    checksum_out: *mut u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let target = unsafe { read_target(target) }?;
        let Some(on_chunk) = on_chunk else {
            return Err(FfiError::new(NORMAN_ERROR_NULL_ARGUMENT, "`on_chunk` is NULL"));
        };
        let shared = client.shared();
        let http = shared.http()?;
        let checksum = shared.block_on(None, async {
            let mut stream = Downloads::new(&http).open(&target).await?;
            while let Some(chunk) = stream.next_chunk().await? {
                // SAFETY: the caller's callback; the chunk lives across the call.
                if unsafe { on_chunk(userdata, chunk.as_ptr(), chunk.len()) } != 0 {
                    let stop = "the chunk callback stopped the download";
                    return Err(FfiError::new(NORMAN_ERROR_CANCELLED, stop));
                }
            }
            Ok(stream.checksum())
        })?;
        if !checksum_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { checksum_out.write(checksum.0) };
        }
        Ok(())
    })
}

/// Retrieves `target` into the file at `path` and returns at once with `*op_id_out` (may be NULL).
/// The file is written under a temporary name beside `path` and renamed into place only once every
/// byte the server announced arrived and reached the disk: `path` is either the whole file or as it
/// was before (a failure or a cancel removes the temporary file). Completion: one
/// NORMAN_EVENT_RETRIEVE_FILE event (bytes, checksum) to `callback` on the callback thread, or to
/// `norman_client_next_event` when `callback` is NULL. Cancel with `norman_client_cancel`.
///
/// Ownership: `target`, `path` borrowed and copied; `userdata` freed with `userdata_free` (may be
/// NULL) exactly once after the completion was delivered, even when this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_retrieve_file_async(
    client: *const norman_client,
    target: *const norman_target,
    path: *const c_char,
    callback: norman_callback,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
    op_id_out: *mut u64,
) -> norman_result {
    start(Completion { callback, userdata, userdata_free }, |completion| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let target = unsafe { read_target(target) }?;
        let path = PathBuf::from(unsafe { arg_str(path, "path") }?);
        let http = client.shared().http()?;
        let mode = Mode::Async { kind: norman_event_kind::NORMAN_EVENT_RETRIEVE_FILE, completion, op_id_out };
        let fut = async move {
            let summary = Downloads::new(&http).to_file(&target, &path, |_| {}).await?;
            Ok(Outcome { bytes: summary.bytes, checksum: summary.checksum.0, ..Outcome::default() })
        };
        client.shared().run(mode, fut).map(drop)
    })
}
