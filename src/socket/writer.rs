//! The client side of the upload stream: connect to a pairing's socket, send
//! `ChaCha20(header || file)`, and return the xxh3-64 of the file.
//!
//! Flow control is the socket's: every full buffer is awaited into the kernel before the next one is
//! filled, so memory stays at one buffer of `chunk_size` bytes whatever the file size.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cipher::StreamCipherState;
use super::pairing::{Pairing, SocketPairingResponse};
use super::parallel::{SealPipeline, PARALLEL_SEGMENT};
use crate::checksum::Checksum;
use crate::config::AppConfig;
use crate::error::{with_timeout, Error, Result, KEYSTREAM_LIMIT};

/// What a finished upload sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSummary {
    /// File bytes sent (the authentication header is not counted).
    pub bytes: u64,
    /// xxh3-64 of the file bytes: what `file-push/socket/complete` expects.
    pub checksum: Checksum,
}

/// One open upload stream. Write file bytes with [`UploadStream::write`] (borrowed, any size) or
/// [`UploadStream::write_from`] (a reader, read straight into the send buffer), then
/// [`UploadStream::finish`]. Dropping it unfinished resets the connection, so the receiver sees an
/// error rather than a short file.
pub struct UploadStream {
    socket: TcpStream,
    state: StreamCipherState,
    /// Encrypted bytes not yet handed to the socket: `wire[..filled]`.
    wire: Box<[u8]>,
    filled: usize,
    timeout: Duration,
    /// Set when a write failed or the stream finished; later calls fail with a clear error.
    closed: bool,
    /// Set only by a clean [`UploadStream::finish`].
    finished: bool,
    /// Told the file bytes handed to the socket so far, after each send.
    progress: Option<Box<dyn FnMut(u64) + Send>>,
    /// With more than one cipher thread: the parallel path, which then owns every byte after the
    /// header (`wire` stays empty).
    parallel: Option<Box<SealPipeline>>,
}

impl UploadStream {
    /// Connects to the pairing's host and port and queues the encrypted authentication header.
    pub async fn connect(pairing: &Pairing, config: &AppConfig) -> Result<Self> {
        config.validate()?;
        Self::connect_with_state(pairing, config, StreamCipherState::new(&pairing.secrets)).await
    }

    pub(crate) async fn connect_with_state(
        pairing: &Pairing,
        config: &AppConfig,
        mut state: StreamCipherState,
    ) -> Result<Self> {
        let addr = format!("{}:{}", pairing.host, pairing.port);
        let socket = with_timeout(config.timeout, "connecting to the upload socket", async {
            TcpStream::connect((pairing.host.as_str(), pairing.port))
                .await
                .map_err(|source| Error::Connect { addr: addr.clone(), source })
        })
        .await?;
        // Writes are already large; don't let the last partial segment wait for an ACK.
        socket.set_nodelay(true).map_err(Error::io("configuring the upload socket"))?;

        let header = pairing.secrets.header.expose();
        let threads = config.effective_cipher_threads();
        let mut wire = vec![0u8; config.chunk_size.max(header.len())].into_boxed_slice();
        wire[..header.len()].copy_from_slice(header);
        state.apply_unhashed(&mut wire[..header.len()])?;
        let mut filled = header.len();
        let mut parallel = None;
        if threads > 1 {
            let segment = config.chunk_size.clamp(*PARALLEL_SEGMENT.start(), *PARALLEL_SEGMENT.end());
            let pipeline =
                SealPipeline::new(&pairing.secrets, state.offset(), &wire[..filled], threads, segment);
            parallel = Some(Box::new(pipeline));
            (wire, filled) = (Box::default(), 0);
        }
        Ok(Self {
            socket,
            state,
            wire,
            filled,
            timeout: config.timeout,
            closed: false,
            finished: false,
            progress: None,
            parallel,
        })
    }

    /// Sends `data` (hashed, then encrypted into the send buffer; the caller's bytes are untouched).
    /// Small writes are coalesced; a full buffer is awaited into the socket before more is accepted.
    /// Fails without sending any of `data` if it would pass the 256 GiB keystream limit.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.check_open()?;
        self.check_room(data.len() as u64)?;
        if self.parallel.is_some() {
            return self.write_parallel(data).await;
        }
        while !data.is_empty() {
            if self.filled == self.wire.len() {
                self.flush().await?;
            }
            let n = (self.wire.len() - self.filled).min(data.len());
            let (piece, rest) = data.split_at(n);
            self.state.seal_into(piece, &mut self.wire[self.filled..self.filled + n])?;
            self.filled += n;
            data = rest;
        }
        Ok(())
    }

    /// Sends everything `reader` yields, reading straight into the send buffer and encrypting there.
    /// Returns the number of bytes read.
    pub async fn write_from<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<u64> {
        self.check_open()?;
        if self.parallel.is_some() {
            return self.write_from_parallel(reader).await;
        }
        let mut total = 0u64;
        loop {
            if self.filled == self.wire.len() {
                self.flush().await?;
            }
            let n = match reader.read(&mut self.wire[self.filled..]).await {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) => {
                    return Err(self.fail(Error::Io { during: "reading the file to upload", source: e }))
                }
            };
            let start = self.filled;
            if let Err(e) = self.state.seal_in_place(&mut self.wire[start..start + n]) {
                return Err(self.fail(e));
            }
            self.filled += n;
            total += n as u64;
        }
    }

    /// Sends a whole file, read straight into the send buffer (no copy beyond the kernel's) on this
    /// task's thread: see [`crate::streaming::blocking_io`] for why that beats a reader thread.
    /// Returns the number of bytes read.
    pub async fn write_file(&mut self, file: std::fs::File) -> Result<u64> {
        self.write_from(&mut crate::streaming::InlineFileReader(file)).await
    }

    /// Hands every buffered byte to the socket, waiting as long as the receiver needs (up to the
    /// configured timeout without progress).
    pub async fn flush(&mut self) -> Result<()> {
        self.check_open()?;
        if let Some(parallel) = &mut self.parallel {
            if let Err(e) = parallel.seal() {
                return Err(self.fail(e));
            }
            while self.send_oldest().await? {}
            return Ok(());
        }
        if self.filled == 0 {
            return Ok(());
        }
        let result = with_timeout(self.timeout, "sending to the upload socket", async {
            self.socket
                .write_all(&self.wire[..self.filled])
                .await
                .map_err(Error::io("sending to the upload socket"))
        })
        .await;
        match result {
            Ok(()) => {
                self.filled = 0;
                if let Some(progress) = &mut self.progress {
                    progress(self.state.content_len());
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Sends what is buffered, closes the write side (the end of the file for the receiver), and
    /// returns the byte count and checksum.
    pub async fn finish(mut self) -> Result<UploadSummary> {
        self.flush().await?;
        let shutdown = with_timeout(self.timeout, "closing the upload socket", async {
            self.socket.shutdown().await.map_err(Error::io("closing the upload socket"))
        })
        .await;
        if let Err(e) = shutdown {
            return Err(self.fail(e));
        }
        self.closed = true;
        self.finished = true;
        Ok(self.summary())
    }

    /// Calls `progress` with the file bytes handed to the socket so far, after each send (once per
    /// `chunk_size` bytes, and at the end).
    pub fn on_progress(&mut self, progress: impl FnMut(u64) + Send + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// Abandons the upload: the connection is reset so the receiver keeps nothing.
    pub fn abort(self) {
        drop(self)
    }

    /// File bytes accepted so far and their checksum.
    pub fn summary(&self) -> UploadSummary {
        if let Some(parallel) = &self.parallel {
            let (bytes, checksum) = parallel.summary();
            return UploadSummary { bytes, checksum };
        }
        UploadSummary { bytes: self.state.content_len(), checksum: self.state.checksum() }
    }

    /// [`UploadStream::write`] on the parallel path: copied into segments (hashed there), sealed on
    /// the cipher threads, sent in order.
    async fn write_parallel(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let Some(parallel) = self.parallel.as_mut() else { return Ok(()) };
            let Some(room) = parallel.room() else {
                self.make_room().await?;
                continue;
            };
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            if let Err(e) = parallel.filled(n) {
                return Err(self.fail(e));
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// [`UploadStream::write_from`] on the parallel path: read straight into segments.
    async fn write_from_parallel<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let Some(parallel) = self.parallel.as_mut() else { return Ok(total) };
            let Some(room) = parallel.room() else {
                self.make_room().await?;
                continue;
            };
            let n = match reader.read(room).await {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) => {
                    return Err(self.fail(Error::Io { during: "reading the file to upload", source: e }))
                }
            };
            if let Err(e) = parallel.filled(n) {
                return Err(self.fail(e));
            }
            total += n as u64;
        }
    }

    /// Sends the oldest segment so that a buffer is free again.
    async fn make_room(&mut self) -> Result<()> {
        if self.send_oldest().await? {
            return Ok(());
        }
        // Every buffer is accounted for (queued, or being filled), so this cannot happen; if it did,
        // an error beats a loop that never ends.
        Err(self.fail(Error::InvalidArgument("the upload's segment buffers are exhausted".into())))
    }

    /// Hands the oldest sealed segment of the parallel path to the socket; false when none is queued.
    async fn send_oldest(&mut self) -> Result<bool> {
        let Self { socket, parallel: Some(parallel), timeout, progress, .. } = self else {
            return Ok(false);
        };
        let sent: Result<bool> = async {
            let Some(segment) = parallel.oldest().await else { return Ok(false) };
            let (buf, len) = segment?;
            with_timeout(*timeout, "sending to the upload socket", async {
                socket.write_all(&buf[..len]).await.map_err(Error::io("sending to the upload socket"))
            })
            .await?;
            parallel.sent(buf, len);
            if let Some(progress) = progress {
                progress(parallel.content_sent());
            }
            Ok(true)
        }
        .await;
        sent.map_err(|e| self.fail(e))
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(Error::Finished)
        } else {
            Ok(())
        }
    }

    fn check_room(&self, requested: u64) -> Result<()> {
        let at = self.parallel.as_ref().map_or(self.state.offset(), |p| p.end_offset());
        match at.checked_add(requested) {
            Some(end) if end <= KEYSTREAM_LIMIT => Ok(()),
            _ => Err(Error::KeystreamExhausted { at, requested }),
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.closed = true;
        e
    }
}

impl Drop for UploadStream {
    fn drop(&mut self) {
        if !self.finished {
            // RST instead of FIN: an unfinished upload must not look like a complete short file.
            let _ = self.socket.set_zero_linger();
        }
    }
}

/// The upload stream as the Python SDK's `SocketClient` exposes it: whole-file helpers over a
/// pairing response.
#[derive(Debug, Clone, Default)]
pub struct SocketClient {
    config: AppConfig,
}

impl SocketClient {
    /// A client using `config` (timeouts, chunk size).
    pub fn new(config: AppConfig) -> Self {
        Self { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Opens an upload stream for a pairing response (validated first, see
    /// [`SocketPairingResponse::validate_for_upload`]).
    pub async fn open(&self, pairing: &SocketPairingResponse) -> Result<UploadStream> {
        UploadStream::connect(&pairing.validate_for_upload()?, &self.config).await
    }

    /// Streams a file (see [`UploadStream::write_file`]) and returns the byte count and checksum.
    pub async fn write_file_and_digest(
        &self,
        pairing: &SocketPairingResponse,
        path: &std::path::Path,
    ) -> Result<UploadSummary> {
        let file = std::fs::File::open(path).map_err(Error::io("opening the file to upload"))?;
        let mut upload = self.open(pairing).await?;
        upload.write_file(file).await?;
        upload.finish().await
    }

    /// Streams everything `reader` yields and returns the byte count and the checksum to send to
    /// `file-push/socket/complete`.
    pub async fn write_and_digest<R: AsyncRead + Unpin>(
        &self,
        pairing: &SocketPairingResponse,
        reader: &mut R,
    ) -> Result<UploadSummary> {
        let mut upload = self.open(pairing).await?;
        upload.write_from(reader).await?;
        upload.finish().await
    }

    /// Streams `reader` and yields each plaintext chunk once it has been handed to the socket, like
    /// the Python SDK's `write` generator (which a caller uses to hash or count progress). The stream
    /// ends after the connection is closed cleanly; an error is its last item.
    pub fn write<'a, R: AsyncRead + Unpin + 'a>(
        &'a self,
        pairing: &'a SocketPairingResponse,
        reader: R,
    ) -> impl Stream<Item = Result<Bytes>> + 'a {
        enum Step<R> {
            Start(R),
            Sending(Box<UploadStream>, R, BytesMut),
        }
        let chunk_size = self.config.chunk_size;
        futures_util::stream::try_unfold(Step::Start(reader), move |step| async move {
            let (mut upload, mut reader, mut buf) = match step {
                Step::Start(reader) => (Box::new(self.open(pairing).await?), reader, BytesMut::new()),
                Step::Sending(upload, reader, buf) => (upload, reader, buf),
            };
            // Reuses the allocation once the caller has dropped the previous chunk.
            buf.reserve(chunk_size);
            buf.resize(chunk_size, 0);
            let n = reader.read(&mut buf[..]).await.map_err(Error::io("reading the file to upload"))?;
            if n == 0 {
                upload.finish().await?;
                return Ok(None);
            }
            buf.truncate(n);
            upload.write(&buf).await?;
            upload.flush().await?;
            let chunk = buf.split().freeze();
            Ok(Some((chunk, Step::Sending(upload, reader, buf))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KEYSTREAM_LIMIT;
    use crate::socket::StreamSecrets;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn nothing_past_the_keystream_limit_reaches_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let secrets = StreamSecrets::generate(16);
        let pairing =
            secrets.to_response("p", "127.0.0.1", listener.local_addr().unwrap().port()).validate().unwrap();
        let captured = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut wire = Vec::new();
            conn.read_to_end(&mut wire).await.unwrap();
            wire
        });
        // Start 100 bytes before the end of the keystream (the 16-byte header takes 16 of them).
        let state = StreamCipherState::at_offset(&pairing.secrets, KEYSTREAM_LIMIT - 100);
        let mut upload =
            UploadStream::connect_with_state(&pairing, &AppConfig::default(), state).await.unwrap();
        upload.write(&[7u8; 80]).await.unwrap();
        let err = upload.write(&[7u8; 5]).await.unwrap_err();
        assert!(matches!(err, Error::KeystreamExhausted { requested: 5, .. }), "{err:?}");
        assert!(err.to_string().contains("256 GiB"), "{err}");
        // The stream is still usable up to the limit: 4 bytes fit exactly.
        upload.write(&[7u8; 4]).await.unwrap();
        let summary = upload.finish().await.unwrap();
        assert_eq!(summary.bytes, 84);
        assert_eq!(captured.await.unwrap().len(), 100, "exactly the keystream's last 100 bytes were sent");
    }
}
