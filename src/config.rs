//! AppConfig: where the Norman API lives, how long to wait, and how data is chunked.
//!
//! Defaults are the Python Core SDK's (`norman_core._app_config`). Every field can be set from code, and
//! [`AppConfig::from_env`] overlays these environment variables on the defaults:
//!
//! | variable               | field          | default                                                          |
//! |------------------------|----------------|------------------------------------------------------------------|
//! | `NORMAN_BASE_URL`      | `base_url`     | `https://api.<environment-name>.<sandbox-name>.public.norman-ai.com/v0` |
//! | `NORMAN_TIMEOUT_SECS`  | `timeout`      | 10 (seconds, fractions allowed)                                  |
//! | `NORMAN_CHUNK_SIZE`    | `chunk_size`   | 65536 (bytes)                                                    |
//! | `NORMAN_RETRIES`       | `retries`      | 3                                                                |
//! | `NORMAN_CIPHER_THREADS`| `cipher_threads` | 0 (what the machine has; 1: one thread, no pool)               |

use std::time::Duration;

use crate::error::{Error, Result};
use crate::socket::MAX_CIPHER_THREADS;

/// The Python SDK's placeholder host: a real deployment sets its own base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.<environment-name>.<sandbox-name>.public.norman-ai.com/v0";
/// Default of [`AppConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`AppConfig::chunk_size`].
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// Default of [`AppConfig::retries`].
pub const DEFAULT_RETRIES: u32 = 3;

/// Chunks above this would make "memory bounded" meaningless for many concurrent uploads.
pub const MAX_CHUNK_SIZE: usize = 64 * 1024 * 1024;

/// Settings of a client: where the API is, the token, timeouts, chunking and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// Base URL of the API, ending in the version (`.../v0`); routes are joined under it.
    pub base_url: String,
    /// Timeout of one HTTP request, of a TCP connect, and of any single socket read or write that
    /// makes no progress.
    pub timeout: Duration,
    /// Unit of reading, hashing, encrypting and socket writes on the upload path: an upload holds
    /// one buffer of this size, whatever the file size.
    pub chunk_size: usize,
    /// Extra attempts for idempotent HTTP requests that fail to connect or get 502/503/504.
    pub retries: u32,
    /// Threads that encrypt one upload (the uploading thread included): 0 is what the machine has
    /// (`available_parallelism`), 1 the single-thread path (one `chunk_size` buffer). Above 1, an
    /// upload holds `2 × threads` segments of `chunk_size` clamped to 256 KiB-4 MiB, and the cipher runs on
    /// a pool of threads shared by the process. The bytes sent are the same either way.
    pub cipher_threads: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            chunk_size: DEFAULT_CHUNK_SIZE,
            retries: DEFAULT_RETRIES,
            cipher_threads: 0,
        }
    }
}

impl AppConfig {
    /// Defaults overlaid with the `NORMAN_*` environment variables that are set.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AppConfig::from_env`], reading variables through `lookup` (testable without touching the
    /// process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = Self::default();
        if let Some(url) = lookup("NORMAN_BASE_URL") {
            config.base_url = url;
        }
        if let Some(secs) = lookup("NORMAN_TIMEOUT_SECS") {
            let secs: f64 = parse_env("NORMAN_TIMEOUT_SECS", &secs)?;
            config.timeout = Duration::try_from_secs_f64(secs).map_err(|_| {
                Error::InvalidConfig(format!(
                    "NORMAN_TIMEOUT_SECS must be a non-negative number of seconds, got {secs}"
                ))
            })?;
            check_timeout("NORMAN_TIMEOUT_SECS", config.timeout)?;
        }
        if let Some(v) = lookup("NORMAN_CHUNK_SIZE") {
            config.chunk_size = parse_env("NORMAN_CHUNK_SIZE", &v)?;
            check_chunk_size("NORMAN_CHUNK_SIZE", config.chunk_size)?;
        }
        if let Some(v) = lookup("NORMAN_RETRIES") {
            config.retries = parse_env("NORMAN_RETRIES", &v)?;
        }
        if let Some(v) = lookup("NORMAN_CIPHER_THREADS") {
            config.cipher_threads = parse_env("NORMAN_CIPHER_THREADS", &v)?;
            check_cipher_threads("NORMAN_CIPHER_THREADS", config.cipher_threads)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that would otherwise fail later in confusing ways.
    pub fn validate(&self) -> Result<()> {
        if self.base_url.trim().is_empty() {
            return Err(Error::InvalidConfig("base_url is empty".into()));
        }
        check_timeout("timeout", self.timeout)?;
        check_chunk_size("chunk_size", self.chunk_size)?;
        check_cipher_threads("cipher_threads", self.cipher_threads)
    }

    /// [`AppConfig::cipher_threads`] with 0 resolved to what the machine has.
    pub fn effective_cipher_threads(&self) -> usize {
        match self.cipher_threads {
            0 => crate::socket::available_threads(),
            n => n.min(MAX_CIPHER_THREADS),
        }
    }
}

/// `name` is the field or the environment variable the value came from, so the error names it.
fn check_timeout(name: &str, timeout: Duration) -> Result<()> {
    if timeout.is_zero() {
        return Err(Error::InvalidConfig(format!("{name} must be greater than zero")));
    }
    Ok(())
}

fn check_chunk_size(name: &str, chunk_size: usize) -> Result<()> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(Error::InvalidConfig(format!(
            "{name} must be between 1 and {MAX_CHUNK_SIZE} bytes, got {chunk_size}"
        )));
    }
    Ok(())
}

fn check_cipher_threads(name: &str, threads: usize) -> Result<()> {
    if threads > MAX_CIPHER_THREADS {
        return Err(Error::InvalidConfig(format!(
            "{name} must be between 0 (what the machine has) and {MAX_CIPHER_THREADS}, got {threads}"
        )));
    }
    Ok(())
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| Error::InvalidConfig(format!("{name} has an invalid value {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_python_sdk() {
        let c = AppConfig::default();
        assert_eq!(c.base_url, "https://api.<environment-name>.<sandbox-name>.public.norman-ai.com/v0");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.chunk_size, 65536);
        assert_eq!(AppConfig::from_lookup(lookup(&[])).unwrap(), c);
    }

    #[test]
    fn environment_overrides_each_field() {
        let c = AppConfig::from_lookup(lookup(&[
            ("NORMAN_BASE_URL", "http://127.0.0.1:9/v0/"),
            ("NORMAN_TIMEOUT_SECS", "2.5"),
            ("NORMAN_CHUNK_SIZE", "1048576"),
            ("NORMAN_RETRIES", "0"),
            ("NORMAN_CIPHER_THREADS", "3"),
        ]))
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9/v0/");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.chunk_size, 1 << 20);
        assert_eq!(c.retries, 0);
        assert_eq!((c.cipher_threads, c.effective_cipher_threads()), (3, 3));
        let auto = AppConfig::default().effective_cipher_threads();
        assert_eq!(auto, std::thread::available_parallelism().map_or(1, |n| n.get()).min(64));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("NORMAN_TIMEOUT_SECS", "soon"),
            ("NORMAN_TIMEOUT_SECS", "-1"),
            ("NORMAN_TIMEOUT_SECS", "0"),
            ("NORMAN_CHUNK_SIZE", "0"),
            ("NORMAN_CHUNK_SIZE", "12x"),
            ("NORMAN_CHUNK_SIZE", "999999999999"),
            ("NORMAN_RETRIES", "-3"),
            ("NORMAN_CIPHER_THREADS", "-1"),
            ("NORMAN_CIPHER_THREADS", "65"),
            ("NORMAN_CIPHER_THREADS", "two"),
        ] {
            let err = AppConfig::from_lookup(lookup(&[(name, value)])).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }
}
