//! `norman_download`: retrieving a model asset or an invocation input or output (the `retrieve` routes), pull
//! style into the caller's buffer, with borrowed chunks through a callback, or into a file
//! asynchronously.

use std::ffi::{c_char, c_void};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::client::{norman_callback, norman_client, norman_event_kind, norman_userdata_free};
use super::client::{ClientShared, Completion, Outcome};
use super::upload::{norman_target, read_target, start, write_op_id, Target};
use crate::checksum::Hasher;
use crate::http::{ByteStream, HttpClient};
use crate::services::UploadTarget;

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
    stream: Option<ByteStream>,
    pending: Bytes,
    received: u64,
    hasher: Hasher,
}

async fn retrieve(http: &HttpClient, target: &Target) -> crate::Result<ByteStream> {
    let retrieve = http.retrieve();
    match target {
        Target::Upload(UploadTarget::Asset { account_id, model_id, asset_id }) => {
            retrieve.get_model_asset(account_id, model_id, asset_id, None).await
        }
        Target::Upload(UploadTarget::Input { account_id, model_id, invocation_id, input_id }) => {
            retrieve.get_invocation_input(account_id, model_id, invocation_id, input_id, None).await
        }
        Target::Output { account_id, model_id, invocation_id, output_id } => {
            retrieve.get_invocation_output(account_id, model_id, invocation_id, output_id, None).await
        }
    }
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
        let stream = shared.block_on(None, async { Ok(retrieve(&http, &target).await?) })?;
        out.write(into_handle(norman_download {
            shared,
            content_length: stream.content_length,
            state: Mutex::new(DownloadState {
                stream: Some(stream),
                pending: Bytes::new(),
                received: 0,
                hasher: Hasher::new(),
            }),
            cancel: CancellationToken::new(),
        }));
        Ok(())
    })
}

/// Copies up to `capacity` bytes of the download into `buffer` and writes their number to
/// `*read_out`; 0 means the end of the file. Blocks until some bytes arrive. `capacity == 0` is
/// NORMAN_ERROR_INVALID_ARGUMENT (0 is reserved for the end).
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
        let state = &mut *state;
        while state.pending.is_empty() {
            let Some(stream) = state.stream.as_mut() else {
                out.write(0);
                return Ok(());
            };
            let next =
                download.shared.block_on(Some(&download.cancel), async { Ok(stream.next_chunk().await) });
            match next {
                Ok(Some(Ok(chunk))) => {
                    state.hasher.update(&chunk);
                    state.received += chunk.len() as u64;
                    state.pending = chunk;
                }
                Ok(None) => {
                    state.stream = None;
                    if let Some(expected) = download.content_length.filter(|&n| n != state.received) {
                        return Err(crate::Error::Truncated {
                            during: "downloading",
                            expected,
                            received: state.received,
                        }
                        .into());
                    }
                }
                Ok(Some(Err(e))) => {
                    state.stream = None;
                    return Err(e.into());
                }
                Err(e) => return Err(e),
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
        out.write(state.hasher.digest().0);
        Ok(())
    })
}

/// Interrupts a read blocked in another thread (it returns NORMAN_ERROR_CANCELLED); later reads fail
/// the same way.
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
            let mut stream = retrieve(&http, &target).await?;
            let mut hasher = Hasher::new();
            while let Some(chunk) = stream.next_chunk().await {
                let chunk = chunk?;
                hasher.update(&chunk);
                // SAFETY: the caller's callback; the chunk lives across the call.
                if unsafe { on_chunk(userdata, chunk.as_ptr(), chunk.len()) } != 0 {
                    return Err(FfiError::new(
                        NORMAN_ERROR_CANCELLED,
                        "the chunk callback stopped the download",
                    ));
                }
            }
            if let Some(expected) = stream.content_length.filter(|&n| n != hasher.len()) {
                return Err(crate::Error::Truncated {
                    during: "downloading",
                    expected,
                    received: hasher.len(),
                }
                .into());
            }
            Ok(hasher.digest())
        })?;
        if !checksum_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { checksum_out.write(checksum.0) };
        }
        Ok(())
    })
}

/// Retrieves `target` into the file at `path` (created or truncated; removed again on failure) and
/// returns at once with `*op_id_out` (may be NULL). Completion: one NORMAN_EVENT_RETRIEVE_FILE event
/// (bytes, checksum) to `callback` on the callback thread, or to `norman_client_next_event` when
/// `callback` is NULL. Cancel with `norman_client_cancel`.
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
        let fut = async move {
            let result = retrieve_to_file(&http, &target, &path).await;
            if result.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            result
        };
        let op_id = client.shared().spawn_op(norman_event_kind::NORMAN_EVENT_RETRIEVE_FILE, completion, fut);
        write_op_id(op_id_out, op_id);
        Ok(())
    })
}

async fn retrieve_to_file(http: &HttpClient, target: &Target, path: &std::path::Path) -> FfiResult<Outcome> {
    let mut stream = retrieve(http, target).await?;
    let mut file = std::fs::File::create(path).map_err(crate::Error::io("creating the download file"))?;
    let mut hasher = Hasher::new();
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        crate::streaming::blocking_io(|| file.write_all(&chunk))
            .map_err(crate::Error::io("writing the download file"))?;
    }
    if let Some(expected) = stream.content_length.filter(|&n| n != hasher.len()) {
        return Err(
            crate::Error::Truncated { during: "downloading", expected, received: hasher.len() }.into()
        );
    }
    Ok(Outcome { bytes: hasher.len(), checksum: hasher.digest().0, ..Outcome::default() })
}
