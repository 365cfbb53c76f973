//! The one error type of libnorman. Each variant belongs to an [`ErrorKind`], which the C ABI maps to
//! a stable `norman_result` code. Messages never contain secrets: keys, nonces, headers and tokens are
//! described by their length at most.

use std::io;

/// The result of every fallible libnorman call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ChaCha20 keystream of one pairing: 2^32 blocks of 64 bytes (256 GiB), header included.
pub const KEYSTREAM_LIMIT: u64 = (1u64 << 32) * 64;

/// Every failure of libnorman; [`Error::kind`] gives its stable family.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller passed a bad value (the message says which).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An [`AppConfig`](crate::AppConfig) value is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A pairing response field is malformed.
    #[error("invalid pairing: `{field}` {reason}")]
    InvalidPairing {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A connection could not be made, or an address bound.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An operation did not finish within its timeout.
    #[error("timed out after {after_ms} ms while {during}")]
    Timeout {
        /// What was being waited for.
        during: &'static str,
        /// The timeout that elapsed, in milliseconds.
        after_ms: u128,
    },

    /// An I/O operation failed.
    #[error("I/O error while {during}: {source}")]
    Io {
        /// What was being done.
        during: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// An upload would pass the [`KEYSTREAM_LIMIT`] of its pairing.
    #[error(
        "the upload would pass the 256 GiB ChaCha20 keystream of one pairing \
         ({at} bytes sent, {requested} more requested); nothing past the limit was sent"
    )]
    KeystreamExhausted {
        /// Bytes already sent on the pairing.
        at: u64,
        /// Bytes the refused write asked for.
        requested: u64,
    },

    /// The received authentication header does not open with this pairing's secrets.
    #[error("authentication header mismatch: the stream was not encrypted for this pairing")]
    AuthHeaderMismatch,

    /// A stream ended before its announced length.
    #[error("stream ended early while {during}: {received} of {expected} bytes received")]
    Truncated {
        /// What was being read.
        during: &'static str,
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        received: u64,
    },

    /// A stream is larger than allowed.
    #[error("stream is larger than the {limit} bytes allowed")]
    Oversize {
        /// The limit in bytes.
        limit: u64,
    },

    /// The bytes received do not have the expected checksum.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The checksum announced (hex).
        expected: String,
        /// The checksum of the bytes received (hex).
        actual: String,
    },

    /// The upload was used after it finished or failed.
    #[error("the upload was already finished or failed")]
    Finished,

    /// The backend answered with an HTTP error status.
    #[error("{method} {route} answered HTTP {status}: {}", body.excerpt)]
    Http {
        /// The request method.
        method: String,
        /// The route requested (without the base URL).
        route: String,
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: HttpBody,
    },

    /// An HTTP request failed in the transport (no usable response).
    #[error("{what} failed: {message}")]
    Network {
        /// The request that failed.
        what: String,
        /// Why.
        message: String,
    },

    /// A response or document could not be decoded.
    #[error("could not decode {what}: {message}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        message: String,
    },

    /// A malformed message frame (src/msg): unknown type, bad lengths, bad auth fields.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// A message failed the check of an auth layer (src/msg); `layer` names the layer, never a key.
    #[error("message authentication failed ({layer})")]
    MsgAuth {
        /// The layer's name.
        layer: &'static str,
    },

    /// A message could not be decrypted by a cipher layer (src/msg).
    #[error("could not decrypt the message ({layer}): {reason}")]
    Decrypt {
        /// The layer's name.
        layer: &'static str,
        /// Why decryption failed.
        reason: &'static str,
    },

    /// The peer answered ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED; the reply is kept.
    #[error("the peer answered {}", reply.describe())]
    Remote {
        /// The peer's reply.
        reply: Box<crate::msg::Message>,
    },

    /// The connection or socket is closed (or was lost while the operation was in flight).
    #[error("{0}")]
    Closed(String),

    /// A BSON frame whose length prefix is outside `5..=max`: refused before reading or allocating
    /// its body. The stream is out of step afterwards (kind: Oversize above `max`, else Decode).
    #[error("BSON frame length {length} is outside the allowed 5..={max} bytes")]
    FrameLength {
        /// The length prefix read.
        length: i64,
        /// The largest frame allowed.
        max: u32,
    },

    /// A document the py-bson dialect refuses to send: py-bson could not read it, or would misread it.
    #[error("not sent to a py-bson peer: field `{field}` {reason}")]
    PyBsonUnsupported {
        /// The path of the field refused.
        field: String,
        /// Why py-bson cannot take it.
        reason: String,
    },

    /// A frame reader used again after a truncated or mis-sized frame left its stream out of step.
    #[error("the BSON stream is out of step after an earlier bad frame; reconnect")]
    FrameStreamBroken,
}

/// The body of an HTTP error: a bounded, printable excerpt (token scrubbed) and the raw bytes for
/// callers that want to parse it.
#[derive(Clone)]
pub struct HttpBody {
    /// A bounded, printable excerpt with any token scrubbed.
    pub excerpt: String,
    /// The raw body (not scrubbed; never printed by `Debug`).
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
    /// See [`Error::InvalidArgument`]; also [`Error::PyBsonUnsupported`].
    InvalidArgument,
    /// See [`Error::InvalidConfig`].
    InvalidConfig,
    /// See [`Error::InvalidPairing`].
    InvalidPairing,
    /// See [`Error::Connect`].
    Connect,
    /// See [`Error::Timeout`].
    Timeout,
    /// See [`Error::Io`].
    Io,
    /// See [`Error::KeystreamExhausted`].
    KeystreamExhausted,
    /// See [`Error::AuthHeaderMismatch`].
    AuthHeaderMismatch,
    /// See [`Error::Truncated`].
    Truncated,
    /// See [`Error::Oversize`]; also a BSON frame longer than allowed.
    Oversize,
    /// See [`Error::ChecksumMismatch`].
    ChecksumMismatch,
    /// An object used in the wrong state ([`Error::Finished`], [`Error::FrameStreamBroken`]).
    State,
    /// See [`Error::Http`].
    Http,
    /// See [`Error::Network`].
    Network,
    /// See [`Error::Decode`]; also a BSON frame length below 5.
    Decode,
    /// See [`Error::Protocol`].
    Protocol,
    /// See [`Error::MsgAuth`].
    MsgAuth,
    /// See [`Error::Decrypt`].
    Decrypt,
    /// See [`Error::Remote`].
    Remote,
    /// See [`Error::Closed`].
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

    /// The stable family of this error.
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
            Error::FrameLength { length, max } if *length > i64::from(*max) => ErrorKind::Oversize,
            Error::FrameLength { .. } => ErrorKind::Decode,
            Error::PyBsonUnsupported { .. } => ErrorKind::InvalidArgument,
            Error::FrameStreamBroken => ErrorKind::State,
        }
    }

    /// Wraps an I/O error as [`Error::Io`] naming what was being done; for `map_err`.
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
