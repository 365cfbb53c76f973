//! `norman_config`: what a client is made from (defaults, environment, setters), checked when the
//! client is created.

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::*;
use crate::config::{AppConfig, DEFAULT_CHUNK_SIZE};
use crate::sensitive::Sensitive;

/// The Python SDK's flush size; accepted for compatibility (see `norman_config_set_flush_size`).
const DEFAULT_FLUSH_SIZE: usize = 8 * 1024 * 1024;

/// Configuration of a client (opaque). Created with `norman_config_new` or `norman_config_from_env`.
pub struct norman_config {
    pub(crate) app: AppConfig,
    pub(crate) token: Option<Sensitive<String>>,
    pub(crate) worker_threads: usize,
    /// Only checked against the chunk size: the upload path holds one chunk, nothing to flush.
    flush_size: usize,
}

impl norman_config {
    fn new(app: AppConfig, token: Option<Sensitive<String>>) -> Self {
        Self { app, token, worker_threads: 0, flush_size: DEFAULT_FLUSH_SIZE.max(DEFAULT_CHUNK_SIZE) }
    }

    /// The whole configuration is valid (what `norman_client_new` checks).
    pub(crate) fn validate(&self) -> FfiResult {
        self.app.validate()?;
        if self.flush_size < self.app.chunk_size {
            return Err(FfiError::new(
                NORMAN_ERROR_INVALID_CONFIG,
                format!(
                    "flush_size ({}) must be at least chunk_size ({})",
                    self.flush_size, self.app.chunk_size
                ),
            ));
        }
        Ok(())
    }
}

/// Creates a configuration with the defaults of the Python SDK (base URL placeholder, 10 s timeout,
/// 64 KiB chunks, 8 MiB flush size, 3 retries, no token, one worker thread per core up to 8).
///
/// Ownership: `*config_out` receives a new handle; free it with `norman_config_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_config_new(config_out: *mut *mut norman_config) -> norman_result {
    guard(|| {
        // SAFETY: checked for NULL; the caller provides writable storage.
        let out = unsafe { Out::new(config_out, "config_out") }?;
        out.write(into_handle(norman_config::new(AppConfig::default(), None)));
        Ok(())
    })
}

/// Creates a configuration from the defaults overlaid with `NORMAN_BASE_URL`, `NORMAN_TIMEOUT_SECS`,
/// `NORMAN_CHUNK_SIZE`, `NORMAN_RETRIES`, `NORMAN_CIPHER_THREADS` and, when set, `NORMAN_TOKEN` (`NORMAN_FLUSH_SIZE` is
/// ignored, see `norman_config_set_flush_size`).
/// Returns NORMAN_ERROR_INVALID_CONFIG naming the bad variable.
///
/// Ownership: `*config_out` receives a new handle; free it with `norman_config_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_config_from_env(config_out: *mut *mut norman_config) -> norman_result {
    guard(|| {
        // SAFETY: as in norman_config_new.
        let out = unsafe { Out::new(config_out, "config_out") }?;
        let app = AppConfig::from_env()?;
        let token = std::env::var("NORMAN_TOKEN").ok().filter(|t| !t.is_empty()).map(Sensitive::new);
        out.write(into_handle(norman_config::new(app, token)));
        Ok(())
    })
}

/// Frees a configuration. NULL is a no-op.
///
/// Ownership: consumes `config`. Threads: any thread, once.
#[no_mangle]
pub unsafe extern "C" fn norman_config_free(config: *mut norman_config) {
    // SAFETY: the pointer came from norman_config_new/_from_env and is not used again.
    guard_value((), || drop(unsafe { take_handle(config) }))
}

/// Sets the API base URL (ending in the version, e.g. `http://127.0.0.1:8080/v0/`). Checked when
/// the client is created.
///
/// Ownership: `base_url` is borrowed and copied. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_base_url(
    config: *mut norman_config,
    base_url: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: handle and string validity are the caller's contract; NULL is checked.
        let config = unsafe { arg_mut(config, "config") }?;
        config.app.base_url = unsafe { arg_str(base_url, "base_url") }?.to_owned();
        Ok(())
    })
}

/// Sets the bearer token sent with every request; NULL or "" removes it. The token is kept as a
/// secret: never logged, never in an error message, wiped from memory when freed.
///
/// Ownership: `token` is borrowed and copied. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_token(
    config: *mut norman_config,
    token: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        let token = unsafe { opt_str(token, "token") }?;
        config.token = token.filter(|t| !t.is_empty()).map(|t| Sensitive::new(t.to_owned()));
        Ok(())
    })
}

/// Sets the timeout of one HTTP request, of a TCP connect and of any socket wait without progress.
/// 0 is NORMAN_ERROR_INVALID_CONFIG.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_timeout_ms(
    config: *mut norman_config,
    timeout_ms: u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        if timeout_ms == 0 {
            return Err(FfiError::new(NORMAN_ERROR_INVALID_CONFIG, "timeout must be greater than zero"));
        }
        config.app.timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// Sets the number of retries of idempotent requests (connect errors, 502/503/504).
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_retries(
    config: *mut norman_config,
    retries: u32,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.app.retries = retries;
        Ok(())
    })
}

/// Sets the upload chunk size (unit of hash + encrypt + socket write, 1 byte to 64 MiB; an upload
/// holds one buffer of this size). Checked when the client is created.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_chunk_size(
    config: *mut norman_config,
    chunk_size: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.app.chunk_size = chunk_size;
        Ok(())
    })
}

/// Kept for compatibility with the Python SDK's settings; it has no effect on transfers: an upload
/// hands each full chunk to the socket and holds nothing more, so there is nothing to flush. A
/// value below the chunk size is still refused by `norman_client_new` (NORMAN_ERROR_INVALID_CONFIG),
/// as it always was.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_flush_size(
    config: *mut norman_config,
    flush_size: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.flush_size = flush_size;
        Ok(())
    })
}

/// Sets the number of runtime worker threads of a client (0: one per core, at most 8).
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_worker_threads(
    config: *mut norman_config,
    threads: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        if threads > 1024 {
            return Err(FfiError::new(NORMAN_ERROR_INVALID_CONFIG, "at most 1024 worker threads"));
        }
        config.worker_threads = threads;
        Ok(())
    })
}

/// Sets the number of threads that encrypt one upload, the uploading thread included (0, the
/// default: one per core; 1: the single-thread path; at most 64, else NORMAN_ERROR_INVALID_CONFIG).
/// Above 1, large uploads are encrypted in segments (`chunk_size` clamped to 256 KiB-4 MiB) on a
/// pool of threads shared by the process, holding `2 × threads` segments; the bytes sent are the
/// same. Also `NORMAN_CIPHER_THREADS`.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_cipher_threads(
    config: *mut norman_config,
    threads: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        if threads > crate::socket::MAX_CIPHER_THREADS {
            return Err(FfiError::new(
                NORMAN_ERROR_INVALID_CONFIG,
                format!("at most {} cipher threads", crate::socket::MAX_CIPHER_THREADS),
            ));
        }
        config.app.cipher_threads = threads;
        Ok(())
    })
}
