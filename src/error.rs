//! The one error type of libnorman. Each variant belongs to an [`ErrorKind`], which the C ABI maps to
//! a stable `norman_result` code. Messages never contain secrets: keys, nonces, headers and tokens are
//! described by their length at most.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ChaCha20 keystream of one pairing: 2^32 blocks of 64 bytes (256 GiB), header included.
pub const KEYSTREAM_LIMIT: u64 = (1u64 << 32) * 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    #[error("invalid pairing: `{field}` {reason}")]
    InvalidPairing { field: &'static str, reason: String },

    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },

    #[error("timed out after {after_ms} ms while {during}")]
    Timeout { during: &'static str, after_ms: u128 },

    #[error("I/O error while {during}: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "the upload would pass the 256 GiB ChaCha20 keystream of one pairing \
         ({at} bytes sent, {requested} more requested); nothing past the limit was sent"
    )]
    KeystreamExhausted { at: u64, requested: u64 },

    #[error("authentication header mismatch: the stream was not encrypted for this pairing")]
    AuthHeaderMismatch,

    #[error("stream ended early while {during}: {received} of {expected} bytes received")]
    Truncated { during: &'static str, expected: u64, received: u64 },

    #[error("stream is larger than the {limit} bytes allowed")]
    Oversize { limit: u64 },

    #[error("checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },

    #[error("the upload was already finished or failed")]
    Finished,

    #[error("{method} {route} answered HTTP {status}: {}", body.excerpt)]
    Http { method: String, route: String, status: u16, body: HttpBody },

    #[error("{what} failed: {message}")]
    Network { what: String, message: String },

    #[error("could not decode {what}: {message}")]
    Decode { what: String, message: String },

    /// A malformed message frame (src/msg): unknown type, bad lengths, bad auth fields.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// A message failed the check of an auth layer (src/msg); `layer` names the layer, never a key.
    #[error("message authentication failed ({layer})")]
    MsgAuth { layer: &'static str },

    /// A message could not be decrypted by a cipher layer (src/msg).
    #[error("could not decrypt the message ({layer}): {reason}")]
    Decrypt { layer: &'static str, reason: &'static str },

    /// The peer answered ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED; the reply is kept.
    #[error("the peer answered {}", reply.describe())]
    Remote { reply: Box<crate::msg::Message> },

    /// The connection or socket is closed (or was lost while the operation was in flight).
    #[error("{0}")]
    Closed(String),
}

/// The body of an HTTP error: a bounded, printable excerpt (token scrubbed) and the raw bytes for
/// callers that want to parse it.
#[derive(Clone)]
pub struct HttpBody {
    pub excerpt: String,
    pub full: Vec<u8>,
}

impl std::fmt::Debug for HttpBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The excerpt is scrubbed; the raw bytes are not, so Debug shows only the excerpt.
        f.debug_struct("HttpBody").field("excerpt", &self.excerpt).field("len", &self.full.len()).finish()
    }
}

/// Families of errors, stable across versions, for callers (and the C ABI) that branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidArgument,
    InvalidConfig,
    InvalidPairing,
    Connect,
    Timeout,
    Io,
    KeystreamExhausted,
    AuthHeaderMismatch,
    Truncated,
    Oversize,
    ChecksumMismatch,
    State,
    Http,
    Network,
    Decode,
    Protocol,
    MsgAuth,
    Decrypt,
    Remote,
    Closed,
}

impl Error {
    /// The HTTP status of an [`Error::Http`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::InvalidPairing { .. } => ErrorKind::InvalidPairing,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Io { .. } => ErrorKind::Io,
            Error::KeystreamExhausted { .. } => ErrorKind::KeystreamExhausted,
            Error::AuthHeaderMismatch => ErrorKind::AuthHeaderMismatch,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Oversize { .. } => ErrorKind::Oversize,
            Error::ChecksumMismatch { .. } => ErrorKind::ChecksumMismatch,
            Error::Finished => ErrorKind::State,
            Error::Http { .. } => ErrorKind::Http,
            Error::Network { .. } => ErrorKind::Network,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::MsgAuth { .. } => ErrorKind::MsgAuth,
            Error::Decrypt { .. } => ErrorKind::Decrypt,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Closed(_) => ErrorKind::Closed,
        }
    }

    pub fn io(during: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { during, source }
    }
}

/// Runs `fut`, turning an elapsed `timeout` into [`Error::Timeout`] naming what was being waited for.
pub async fn with_timeout<T>(
    timeout: std::time::Duration,
    during: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout { during, after_ms: timeout.as_millis() }),
    }
}
