//! One BSON document per frame, as py-bson's `sendobj`/`recvobj` exchange them: the document's own
//! int32 little-endian length is the frame header; documents follow each other back to back.

use std::time::Duration;

use bson::raw::{RawDocument, RawDocumentBuf};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::exact::{read_exact_into, Exact};
use super::{py_bson, walk, Dialect, Limits};
use crate::error::{Error, Result};

/// The smallest document: its length and the trailing NUL.
pub const MIN_DOCUMENT_BYTES: u32 = 5;

impl Limits {
    /// Checks a frame's announced length before anything is allocated for it.
    pub fn check_length(&self, length: i32) -> Result<usize> {
        if length < MIN_DOCUMENT_BYTES as i32 || length as i64 > i64::from(self.max_bytes) {
            return Err(Error::FrameLength { length: length.into(), max: self.max_bytes });
        }
        Ok(length as usize)
    }

    /// Validates `bytes` as one document within these limits (every element, nesting depth).
    pub fn validate<'a>(&self, bytes: &'a [u8]) -> Result<&'a RawDocument> {
        if bytes.len() > self.max_bytes as usize {
            return Err(Error::FrameLength { length: bytes.len() as i64, max: self.max_bytes });
        }
        let doc = RawDocument::from_bytes(bytes)
            .map_err(|e| Error::Decode { what: "BSON document".into(), message: e.to_string() })?;
        walk::walk(doc, self.max_depth, |_| None).map_err(|e| e.into_error("BSON document"))?;
        Ok(doc)
    }
}

/// Reads documents from a stream, reusing one buffer (it grows to the largest frame seen, never past
/// `max_bytes`). Wrap an unbuffered stream in `tokio::io::BufReader`: a frame takes two reads.
///
/// A timeout or I/O error keeps the partial frame: calling [`FrameReader::read`] again resumes it.
/// A truncated frame or a length outside the limits leaves the stream out of step: later calls fail
/// with [`Error::FrameStreamBroken`]. A complete frame that is not a valid document is an error too,
/// but the stream stays in step and the next call reads the next frame.
#[derive(Debug)]
pub struct FrameReader {
    limits: Limits,
    buf: Vec<u8>,
    /// The current frame's length once its header is read, else 0.
    len: usize,
    filled: usize,
    /// The last call returned the frame in `buf` (or refused it): the next call starts afresh.
    consumed: bool,
    broken: bool,
}

impl FrameReader {
    /// A reader that refuses frames outside `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameReader { limits, buf: Vec::new(), len: 0, filled: 0, consumed: false, broken: false }
    }

    /// The limits frames are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while a frame is partly read (a timeout or an I/O error stopped it): the next
    /// [`FrameReader::read`] resumes it, and nothing else may read the stream in between.
    pub fn partial(&self) -> bool {
        !self.consumed && !self.broken && self.filled > 0
    }

    /// The next document, validated, borrowed from the reader's buffer; `None` when the peer closed
    /// the stream cleanly between documents. `timeout` bounds this call.
    pub async fn read<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
        timeout: Option<Duration>,
    ) -> Result<Option<&RawDocument>> {
        if self.broken {
            return Err(Error::FrameStreamBroken);
        }
        if self.consumed {
            (self.len, self.filled, self.consumed) = (0, 0, false);
        }
        let progress = self.fill(reader);
        let complete = match timeout {
            None => progress.await,
            Some(limit) => tokio::time::timeout(limit, progress).await.unwrap_or(Err(Error::Timeout {
                during: "reading a BSON document",
                after_ms: limit.as_millis(),
            })),
        };
        match complete {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.consumed = true;
                self.limits.validate(&self.buf[..self.len]).map(Some)
            }
            Err(e) => {
                if matches!(e, Error::Truncated { .. } | Error::FrameLength { .. }) {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Reads the next document into `T`; `None` on a clean close.
    pub async fn read_typed<T: DeserializeOwned, R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        reader: &mut R,
        timeout: Option<Duration>,
    ) -> Result<Option<T>> {
        match self.read(reader, timeout).await? {
            None => Ok(None),
            Some(doc) => decode(doc).map(Some),
        }
    }

    /// Fills the frame in `buf`; false when the stream ended cleanly before it.
    async fn fill<R: AsyncRead + Unpin + ?Sized>(&mut self, reader: &mut R) -> Result<bool> {
        if self.len == 0 {
            if self.buf.len() < 4 {
                self.buf.resize(4, 0);
            }
            let header = &mut self.buf[..4];
            let during = "reading a BSON frame length";
            if read_exact_into(reader, header, &mut self.filled, None, during).await? == Exact::Closed {
                return Ok(false);
            }
            let announced = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            self.len = self.limits.check_length(announced)?;
            if self.buf.len() < self.len {
                // Zero-fills only the growth; later frames of at most this size reuse it as is.
                self.buf.resize(self.len, 0);
            }
        }
        let frame = &mut self.buf[..self.len];
        read_exact_into(reader, frame, &mut self.filled, None, "reading a BSON document").await?;
        Ok(true)
    }
}

/// Writes documents, one whole frame each: validated first (and, in the py-bson dialect, refused
/// when py-bson would misread them), so nothing half-checked reaches the peer. Typed values are
/// serialized into one reused buffer. Does not flush: wrap in `BufWriter` and flush to batch.
#[derive(Debug)]
pub struct FrameWriter {
    limits: Limits,
    dialect: Dialect,
    allow_uint64: bool,
    buf: Vec<u8>,
}

impl FrameWriter {
    /// A writer of documents within `limits`, in `dialect`.
    pub fn new(limits: Limits, dialect: Dialect) -> Self {
        FrameWriter { limits, dialect, allow_uint64: false, buf: Vec::new() }
    }

    /// In the py-bson dialect, sends 0x11 elements as py-bson's uint64 (see [`py_bson::uint64`])
    /// instead of refusing them as BSON Timestamps.
    pub fn allow_uint64(mut self, allow: bool) -> Self {
        self.allow_uint64 = allow;
        self
    }

    /// Checks that `doc` may be sent: valid, within the limits, readable by the dialect's peer.
    pub fn check(&self, doc: &RawDocument) -> Result<()> {
        check(doc, &self.limits, self.dialect, self.allow_uint64)
    }

    /// Sends one document, whole.
    pub async fn send_raw<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        writer: &mut W,
        doc: &RawDocument,
    ) -> Result<()> {
        self.check(doc)?;
        writer.write_all(doc.as_bytes()).await.map_err(Error::io("sending a BSON document"))
    }

    /// Serializes `value` (a struct or map) and sends it as one document.
    pub async fn send<T: Serialize, W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        writer: &mut W,
        value: &T,
    ) -> Result<()> {
        self.encode(value)?;
        writer.write_all(&self.buf).await.map_err(Error::io("sending a BSON document"))
    }

    /// Serializes and checks `value` into the writer's buffer, as a frame ready to send.
    pub fn encode<T: Serialize>(&mut self, value: &T) -> Result<&RawDocument> {
        self.buf.clear();
        bson::serialize_to_buffer(value, &mut self.buf)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode as a BSON document: {e}")))?;
        let doc = RawDocument::from_bytes(&self.buf)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode as a BSON document: {e}")))?;
        check(doc, &self.limits, self.dialect, self.allow_uint64)?;
        Ok(doc)
    }

    /// Like [`FrameWriter::encode`], but hands the bytes over (the writer's buffer starts afresh).
    pub fn encode_owned<T: Serialize>(&mut self, value: &T) -> Result<RawDocumentBuf> {
        self.encode(value)?;
        RawDocumentBuf::from_bytes(std::mem::take(&mut self.buf))
            .map_err(|e| Error::InvalidArgument(format!("cannot encode as a BSON document: {e}")))
    }
}

fn check(doc: &RawDocument, limits: &Limits, dialect: Dialect, allow_uint64: bool) -> Result<()> {
    let bytes = doc.as_bytes();
    if bytes.len() > limits.max_bytes as usize {
        return Err(Error::FrameLength { length: bytes.len() as i64, max: limits.max_bytes });
    }
    let result = match dialect {
        Dialect::Standard => walk::walk(doc, limits.max_depth, |_| None),
        Dialect::PyBson => walk::walk(doc, limits.max_depth, |v| py_bson::refusal(v, allow_uint64)),
    };
    result.map_err(|e| e.into_error("BSON document"))
}

/// Deserializes a document into `T` (the document should come from [`Limits::validate`] or a
/// [`FrameReader`], which bound its nesting).
pub fn decode<T: DeserializeOwned>(doc: &RawDocument) -> Result<T> {
    bson::deserialize_from_slice(doc.as_bytes())
        .map_err(|e| Error::Decode { what: "BSON document".into(), message: e.to_string() })
}
