//! Shared connection plumbing: the bounded outbox, the writer task, the frame reader.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::msg::wire::{Header, Limits, Message, HEADER_LEN};

pub(super) struct Frame {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// The sending side of a connection's writer queue, bounded in bytes.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::UnboundedSender<Frame>,
    pub(super) budget: Arc<Semaphore>,
    cap: usize,
    /// The socket's write half: the writer task's while it writes a batch, a sender's while it
    /// writes one frame itself (`send_now`). Whoever holds it writes whole frames only. The writer
    /// takes it out when it ends (the socket closes then, whoever still holds an outbox).
    line: Line,
    kill: watch::Receiver<bool>,
}

type Line = Arc<tokio::sync::Mutex<Option<OwnedWriteHalf>>>;

/// What the writer task (`write_loop`) of a connection works with.
pub(super) struct Writer {
    rx: mpsc::UnboundedReceiver<Frame>,
    line: Line,
    budget: Arc<Semaphore>,
    kill: watch::Receiver<bool>,
}

pub(super) enum Full {
    Full(Bytes),
    Closed,
}

impl Outbox {
    /// The outbox of a connection and its writer; `kill` stops the writer (and a sender's
    /// unfinished frame) at once.
    pub(super) fn new(cap: usize, w: OwnedWriteHalf, kill: watch::Receiver<bool>) -> (Outbox, Writer) {
        let cap = cap.max(1).min(u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(cap));
        let line = Arc::new(tokio::sync::Mutex::new(Some(w)));
        let writer = Writer { rx, line: line.clone(), budget: budget.clone(), kill: kill.clone() };
        (Outbox { tx, budget, cap, line, kill }, writer)
    }

    fn permits(&self, len: usize) -> u32 {
        // A frame larger than the whole budget takes all of it (it goes out alone).
        len.clamp(1, self.cap) as u32
    }

    /// Writes `bytes` at once on the calling thread when nothing is queued, so that a request costs
    /// no wake-up of the writer task; otherwise queues them like `send`. When the socket takes
    /// only part of the frame, a task of its own finishes it still holding the line: frames never
    /// interleave, and a caller that gives up (a deadline) cannot cut one short.
    pub(super) async fn send_now(&self, bytes: Bytes) -> Result<()> {
        if self.queued() == 0 {
            if let Ok(line) = self.line.clone().try_lock_owned() {
                // Checked again holding the line: a frame queued in between must go first.
                if let (0, Some(w)) = (self.queued(), line.as_ref()) {
                    match w.try_write(&bytes) {
                        Ok(n) if n == bytes.len() => return Ok(()),
                        Ok(n) => {
                            self.finish(line, bytes.slice(n..));
                            return Ok(());
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {} // queued below
                        Err(e) => return Err(Error::Io { during: "sending a message", source: e }),
                    }
                }
            }
        }
        self.send(bytes).await
    }

    /// Writes the rest of a frame that `send_now` began, keeping the line until it is out (or
    /// the connection is killed).
    fn finish(&self, mut line: tokio::sync::OwnedMutexGuard<Option<OwnedWriteHalf>>, rest: Bytes) {
        // Counted in the budget like a queued frame while it waits (none left: it goes anyway).
        let permit = self.budget.clone().try_acquire_many_owned(self.permits(rest.len())).ok();
        let mut kill = self.kill.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(w) = line.as_mut() else { return };
            tokio::select! {
                // A failed write ends the connection; its reader reports it.
                _ = w.write_all(&rest) => {}
                _ = raised(&mut kill) => {}
            }
        });
    }

    /// Queues `bytes`, waiting for room.
    pub(super) async fn send(&self, bytes: Bytes) -> Result<()> {
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(self.permits(bytes.len()))
            .await
            .map_err(|_| Error::Closed("the connection is closed".into()))?;
        self.tx
            .send(Frame { bytes, _permit: permit })
            .map_err(|_| Error::Closed("the connection is closed".into()))
    }

    /// Queues `bytes` if there is room now.
    pub(super) fn try_send(&self, bytes: Bytes) -> std::result::Result<(), Full> {
        match self.budget.clone().try_acquire_many_owned(self.permits(bytes.len())) {
            Ok(permit) => self.tx.send(Frame { bytes, _permit: permit }).map_err(|_| Full::Closed),
            Err(TryAcquireError::NoPermits) => Err(Full::Full(bytes)),
            Err(TryAcquireError::Closed) => Err(Full::Closed),
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.cap.saturating_sub(self.budget.available_permits())
    }
}

const BATCH: usize = 256 * 1024;

/// Resolves when `flag` turns true; never when its sender is gone without saying so.
pub(super) async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|f| *f).await.is_err() {
        std::future::pending::<()>().await
    }
}

/// Writes queued frames, coalescing whatever is queued into one write. Ends when every sender is
/// gone (after writing what was queued) or when `kill` fires.
pub(super) async fn write_loop(writer: Writer) {
    let Writer { mut rx, line, budget, mut kill } = writer;
    let mut buf: Vec<u8> = Vec::new();
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = raised(&mut kill) => None,
        };
        let Some(first) = first else { break };
        buf.extend_from_slice(&first.bytes);
        held.push(first._permit);
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    buf.extend_from_slice(&f.bytes);
                    held.push(f._permit);
                }
                Err(_) => break,
            }
        }
        let ok = tokio::select! {
            r = async {
                match line.lock().await.as_mut() {
                    Some(w) => w.write_all(&buf).await.is_ok(),
                    None => false,
                }
            } => r,
            _ = raised(&mut kill) => false,
        };
        buf.clear();
        held.clear();
        // A burst's buffer is not kept: a thousand idle connections must stay small.
        if buf.capacity() > 64 * 1024 {
            buf = Vec::new();
        }
        if !ok {
            break;
        }
    }
    // Wake senders waiting for room: nothing more will be written.
    budget.close();
    let close = async {
        if let Some(mut w) = line.lock().await.take() {
            let _ = w.shutdown().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
}

/// Reads frames from a stream into one growing buffer; each frame is split off without a copy.
pub(super) struct FrameReader {
    buf: BytesMut,
    limits: Limits,
}

pub(super) enum ReadError {
    /// Clean end of stream between frames.
    Eof,
    Timeout,
    Fail(Error),
}

impl FrameReader {
    pub(super) fn new(limits: Limits) -> FrameReader {
        FrameReader { buf: BytesMut::new(), limits }
    }

    async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        need: usize,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ReadError> {
        while self.buf.len() < need {
            self.buf.reserve((need - self.buf.len()).max(8192));
            let read = r.read_buf(&mut self.buf);
            let n = match deadline {
                Some(d) => tokio::time::timeout_at(d, read).await.map_err(|_| ReadError::Timeout)?,
                None => read.await,
            }
            .map_err(|e| ReadError::Fail(Error::Io { during: "reading a message", source: e }))?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ReadError::Eof
                } else {
                    ReadError::Fail(Error::Truncated {
                        during: "reading a message",
                        expected: need as u64,
                        received: self.buf.len() as u64,
                    })
                });
            }
        }
        Ok(())
    }

    /// The next frame: its header and its payload (auth + body), which must arrive whole within
    /// `timeout` (a peer trickling bytes cannot hold a connection). Lengths are checked against
    /// the limits before the payload is read.
    pub(super) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        timeout: Option<Duration>,
    ) -> std::result::Result<(Header, Bytes), ReadError> {
        let timeout = timeout.map(|t| Instant::now() + t);
        self.fill(r, HEADER_LEN, timeout).await?;
        let header = Header::decode(&self.buf[..HEADER_LEN]).map_err(ReadError::Fail)?;
        self.limits.check(&header).map_err(ReadError::Fail)?;
        let total = HEADER_LEN + header.payload_len();
        self.fill(r, total, timeout).await?;
        let mut frame = self.buf.split_to(total);
        let payload = frame.split_off(HEADER_LEN).freeze();
        if self.buf.is_empty() && self.buf.capacity() > 16 * 1024 {
            // Let go of a large buffer (it is freed with the last message that points into it).
            self.buf = BytesMut::new();
        }
        Ok((header, payload))
    }
}

pub(super) fn encode(msg: &Message) -> Result<Bytes> {
    let mut v = Vec::with_capacity(HEADER_LEN + 128 + msg.body_len());
    msg.encode_into(&mut v)?;
    Ok(Bytes::from(v))
}
