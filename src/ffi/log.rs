//! Log records of the library for a C host: a callback it installs, or stderr filtered by the
//! `NORMAN_LOG` environment variable (`off`, `error`, `warn`, `info`, `debug`, `trace`; default off).
//! Records never contain secrets: tokens, keys, nonces and headers are never formatted anywhere.

use std::ffi::{c_char, c_void, CString};
use std::io::Write;
use std::sync::{Once, RwLock};

use super::boundary::*;
use super::events::UserData;

/// Severity of a log record (and the most verbose level a host wants).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum norman_log_level {
    /// No records.
    NORMAN_LOG_OFF = 0,
    /// Errors only.
    NORMAN_LOG_ERROR = 1,
    /// Warnings and errors.
    NORMAN_LOG_WARN = 2,
    /// Informational records and above.
    NORMAN_LOG_INFO = 3,
    /// Debugging records and above.
    NORMAN_LOG_DEBUG = 4,
    /// Everything.
    NORMAN_LOG_TRACE = 5,
}

/// Receives one log record. `target` and `message` are UTF-8, NUL-terminated, borrowed for the
/// duration of the call. Called on whatever thread logs (runtime workers included): it must be
/// thread-safe, return quickly, and not call blocking libnorman functions.
pub type norman_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: norman_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

type Sink = (unsafe extern "C" fn(*mut c_void, norman_log_level, *const c_char, *const c_char), UserData);

struct HostLogger {
    sink: RwLock<Option<Sink>>,
}

static LOGGER: HostLogger = HostLogger { sink: RwLock::new(None) };
static INSTALL: Once = Once::new();

fn env_filter() -> log::LevelFilter {
    match std::env::var("NORMAN_LOG").unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Off,
    }
}

/// Installs the library's logger once, if the process has none (a Rust host may have its own).
pub(crate) fn install_default_logger() {
    INSTALL.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(env_filter());
        }
    });
}

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = self.sink.read().unwrap_or_else(|e| e.into_inner());
        match sink.as_ref() {
            Some((cb, userdata)) => {
                let level = match record.level() {
                    log::Level::Error => norman_log_level::NORMAN_LOG_ERROR,
                    log::Level::Warn => norman_log_level::NORMAN_LOG_WARN,
                    log::Level::Info => norman_log_level::NORMAN_LOG_INFO,
                    log::Level::Debug => norman_log_level::NORMAN_LOG_DEBUG,
                    log::Level::Trace => norman_log_level::NORMAN_LOG_TRACE,
                };
                let target = CString::new(record.target().replace('\0', " ")).unwrap_or_default();
                let message = CString::new(record.args().to_string().replace('\0', " ")).unwrap_or_default();
                // SAFETY: the host registered this callback and userdata; the strings live for the call.
                unsafe { cb(userdata.0, level, target.as_ptr(), message.as_ptr()) };
            }
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "norman {} {}: {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
            }
        }
    }

    fn flush(&self) {}
}

/// Sends the library's log records up to `max_level` (a norman_log_level; values above
/// NORMAN_LOG_TRACE mean trace) to `callback` (process-wide, all clients);
/// a NULL callback goes back to stderr filtered by `NORMAN_LOG`. Records never contain secrets.
///
/// Ownership: `userdata` stays the caller's; it must stay valid until the callback is replaced.
/// Threads: any thread; the callback may then run on any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_set_log_callback(
    callback: norman_log_callback,
    userdata: *mut c_void,
    max_level: i32,
) -> norman_result {
    guard(|| {
        install_default_logger();
        let mut sink = LOGGER.sink.write().unwrap_or_else(|e| e.into_inner());
        match callback {
            Some(cb) => {
                *sink = Some((cb, UserData(userdata)));
                log::set_max_level(match max_level {
                    i32::MIN..=0 => log::LevelFilter::Off,
                    1 => log::LevelFilter::Error,
                    2 => log::LevelFilter::Warn,
                    3 => log::LevelFilter::Info,
                    4 => log::LevelFilter::Debug,
                    _ => log::LevelFilter::Trace,
                });
            }
            None => {
                *sink = None;
                log::set_max_level(env_filter());
            }
        }
        Ok(())
    })
}
