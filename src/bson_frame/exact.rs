//! Exact-length reads over any tokio `AsyncRead`, telling apart the four ways a read can end short:
//! a clean end of stream before the first byte, a truncation inside, a timeout and an I/O error.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

/// How an exact read that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exact {
    /// The buffer is full.
    Full,
    /// The peer closed the stream before the first byte of this read (between messages).
    Closed,
}

/// Fills `buf[*filled..]` from `reader`, advancing `*filled` as bytes arrive.
///
/// Returns [`Exact::Full`] once `*filled == buf.len()`, and [`Exact::Closed`] when the stream ends
/// while `*filled` is 0. An end of stream after at least one byte is [`Error::Truncated`]; `timeout`
/// (for the whole call) elapsing is [`Error::Timeout`]; a failing read is [`Error::Io`]. On a timeout
/// or an I/O error the bytes already read stay in `buf[..*filled]`: calling again with the same
/// buffer and `filled` resumes where the read stopped (tokio's `read` is cancellation-safe, so
/// dropping this future keeps the same guarantee).
pub async fn read_exact_into<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    filled: &mut usize,
    timeout: Option<Duration>,
    during: &'static str,
) -> Result<Exact> {
    let fill = fill(reader, buf, filled, during);
    match timeout {
        None => fill.await,
        Some(limit) => match tokio::time::timeout(limit, fill).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { during, after_ms: limit.as_millis() }),
        },
    }
}

async fn fill<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
    filled: &mut usize,
    during: &'static str,
) -> Result<Exact> {
    if *filled > buf.len() {
        return Err(Error::InvalidArgument(format!(
            "exact read: {} bytes already filled in a buffer of {}",
            *filled,
            buf.len()
        )));
    }
    while *filled < buf.len() {
        match reader.read(&mut buf[*filled..]).await {
            Ok(0) if *filled == 0 => return Ok(Exact::Closed),
            Ok(0) => {
                return Err(Error::Truncated { during, expected: buf.len() as u64, received: *filled as u64 })
            }
            Ok(n) => *filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(Error::Io { during, source }),
        }
    }
    Ok(Exact::Full)
}
