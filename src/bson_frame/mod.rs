//! BSON documents over sockets, one document per frame, interoperable with py-bson's socket
//! extensions (`bson.patch_socket()`: `sendobj`/`recvobj`/`recvbytes`); see `docs/netaio/BSON_SOCKET.md`.
//!
//! - [`read_exact_into`]: exact-length reads over any `AsyncRead` that tell a clean close from a
//!   truncation, a timeout and an error, and resume into the caller's buffer.
//! - [`FrameReader`] / [`FrameWriter`]: documents, raw (zero-copy [`RawDocument`]) or typed (serde);
//!   the length prefix is checked (`5..=max_bytes`) before anything is allocated, and every document
//!   received is validated.
//! - [`Dialect::PyBson`]: the writer refuses, naming the field, what py-bson cannot read or misreads;
//!   0x11 reads as py-bson's uint64 ([`py_bson`]).
//! - [`to_relaxed_extjson`] / [`from_relaxed_extjson`]: one line of relaxed Extended JSON per
//!   document, key order kept.
//! - [`FrameWriter::message`] / [`message_typed`]: one document as the content of a message of the
//!   messaging layer ([`crate::msg`]), under the same limits and checks.

mod exact;
mod extjson;
mod frame;
mod message;
pub mod py_bson;
mod walk;

pub use bson::raw::{RawDocument, RawDocumentBuf};
pub use exact::{read_exact_into, Exact};
pub use extjson::{from_relaxed_extjson, to_relaxed_extjson};
pub use frame::{decode, FrameReader, FrameWriter, MIN_DOCUMENT_BYTES};
pub use message::{message_document, message_typed};

/// 16 MiB, MongoDB's maxBsonObjectSize.
pub const DEFAULT_MAX_BYTES: u32 = 16 * 1024 * 1024;
/// MongoDB's documented nesting limit; bounds every recursive conversion of a received document.
pub const DEFAULT_MAX_DEPTH: u32 = 100;

/// What a document may be: its size in bytes (the length prefix included) and its nesting depth
/// (the top level counts as 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document in bytes, length prefix included.
    pub max_bytes: u32,
    /// Deepest nesting allowed (the top level is 1).
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_BYTES, max_depth: DEFAULT_MAX_DEPTH }
    }
}

/// Whose reading of BSON to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The BSON specification, as the `bson` crate and MongoDB read it.
    #[default]
    Standard,
    /// py-bson 0.5.10: writers refuse what it cannot read or misreads; 0x11 is an unsigned 64-bit
    /// integer, not a Timestamp.
    PyBson,
}
