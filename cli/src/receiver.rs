//! The backend's side of the upload stream (PROTOCOL.md §4): for one pairing, accept one connection,
//! decrypt, check the authentication header in constant time, stream the file to a sink, and report
//! its size and checksum.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use zeroize::Zeroize;

use norman::error::{with_timeout, Error, Result};
use norman::socket::{ParallelKeystream, StreamCipherState, StreamSecrets, PARALLEL_SEGMENT};
use norman::streaming::PartFile;
use norman::{Checksum, Hasher};

/// Limits of one receive.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// File size announced at pairing time: fewer bytes is [`Error::Truncated`], more is
    /// [`Error::Oversize`]. `None` accepts any size up to `max_size`.
    pub expected_size: Option<u64>,
    /// Hard cap on file bytes (the keystream caps it at 256 GiB anyway).
    pub max_size: u64,
    /// How long the pairing waits for its one connection.
    pub accept_timeout: Duration,
    /// How long a read may wait for data before the upload is abandoned.
    pub idle_timeout: Duration,
    /// Read buffer, reused for the whole stream (a segment of the parallel path, at least 128 KiB).
    pub buffer_size: usize,
    /// Threads that decrypt the stream, this one included: 0 is what the machine has, 1 the
    /// single-thread path. Above 1 the receive holds `2 × threads` buffers.
    pub cipher_threads: usize,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            expected_size: None,
            max_size: u64::MAX,
            accept_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
            buffer_size: 256 * 1024,
            cipher_threads: 0,
        }
    }
}

/// What a clean receive got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub checksum: Checksum,
    pub peer: SocketAddr,
}

/// A listening socket for one pairing. Consumed by the receive, which closes the port after its one
/// connection.
pub struct UploadReceiver {
    listener: TcpListener,
    secrets: StreamSecrets,
    options: ReceiveOptions,
}

impl UploadReceiver {
    /// Listens on `addr` (port 0 picks a free port; see [`UploadReceiver::local_addr`]).
    pub async fn bind(
        addr: impl ToSocketAddrs,
        secrets: StreamSecrets,
        options: ReceiveOptions,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(Error::io("binding the upload socket"))?;
        Ok(Self { listener, secrets, options })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::io("reading the upload socket's address"))
    }

    /// Receives one upload into `sink`. On error the sink may hold part of the stream: use
    /// [`UploadReceiver::receive_to_part_file`] when nothing may be left behind.
    pub async fn receive<W: AsyncWrite + Unpin>(self, sink: &mut W) -> Result<Received> {
        let UploadReceiver { listener, secrets, options } = self;
        let (mut conn, peer) =
            with_timeout(options.accept_timeout, "waiting for the upload connection", async {
                listener.accept().await.map_err(Error::io("accepting the upload connection"))
            })
            .await?;
        // One connection per pairing: close the port before reading a byte.
        drop(listener);

        let encrypted = read_header(&mut conn, secrets.header.expose().len(), options.idle_timeout).await?;
        let state = open_header(&secrets, &encrypted).ok_or(Error::AuthHeaderMismatch)?;
        let (bytes, checksum) = receive_stream(&mut conn, &secrets, state, &options, sink).await?;
        Ok(Received { bytes, checksum, peer })
    }

    /// Receives one upload into a temporary file beside `dest`. The caller decides: commit it (after
    /// checking the checksum, say) or drop it, which deletes it. On error nothing is left behind.
    pub async fn receive_to_part_file(self, dest: &Path) -> Result<(PartFile, Received)> {
        let mut part = PartFile::create_beside(dest).await?;
        let received = self.receive(part.writer()).await?;
        Ok((part, received))
    }

    /// Receives one upload into `dest`, which appears (atomically) only when the stream ended cleanly
    /// with the right header.
    pub async fn receive_to_file(self, dest: &Path) -> Result<Received> {
        let (part, received) = self.receive_to_part_file(dest).await?;
        part.commit(dest).await?;
        Ok(received)
    }
}

/// Reads the `len` encrypted bytes of the authentication header that open a connection, within
/// `deadline` in all (a peer trickling bytes gains nothing).
pub async fn read_header(conn: &mut TcpStream, len: usize, deadline: Duration) -> Result<Vec<u8>> {
    const DURING: &str = "reading the authentication header";
    let mut header = vec![0u8; len];
    with_timeout(deadline, DURING, async {
        let mut got = 0;
        while got < len {
            let n = conn.read(&mut header[got..]).await.map_err(Error::io(DURING))?;
            if n == 0 {
                return Err(Error::Truncated { during: DURING, expected: len as u64, received: got as u64 });
            }
            got += n;
        }
        Ok(())
    })
    .await?;
    Ok(header)
}

/// Whether `encrypted` is `secrets`' authentication header under its key and nonce (compared in
/// constant time); if so, the cipher state to read the file bytes that follow.
pub fn open_header(secrets: &StreamSecrets, encrypted: &[u8]) -> Option<StreamCipherState> {
    let expected = secrets.header.expose();
    if encrypted.len() != expected.len() {
        return None;
    }
    let mut state = StreamCipherState::new(secrets);
    // A server tries every waiting pairing on each connection: no allocation for usual lengths.
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let header: &mut [u8] = if encrypted.len() <= stack.len() {
        &mut stack[..encrypted.len()]
    } else {
        heap.resize(encrypted.len(), 0);
        &mut heap
    };
    header.copy_from_slice(encrypted);
    state.apply_unhashed(header).ok()?;
    let matches = bool::from(header.ct_eq(expected));
    header.zeroize();
    matches.then_some(state)
}

/// Streams the file bytes after the header into `sink`, decrypting and hashing; returns their count
/// and checksum. Enforces `options`' sizes and idle timeout. `state` is the cipher after the header
/// (from [`open_header`] with `secrets`).
pub async fn receive_stream<W: AsyncWrite + Unpin>(
    conn: &mut TcpStream,
    secrets: &StreamSecrets,
    mut state: StreamCipherState,
    options: &ReceiveOptions,
    sink: &mut W,
) -> Result<(u64, Checksum)> {
    let threads = match options.cipher_threads {
        0 => norman::socket::available_threads(),
        n => n,
    };
    if threads > 1 {
        return receive_parallel(
            conn,
            ParallelKeystream::new(
                secrets,
                state.offset(),
                threads,
                options.buffer_size.clamp(*PARALLEL_SEGMENT.start(), *PARALLEL_SEGMENT.end()),
            ),
            options,
            sink,
        )
        .await;
    }
    let limit = receive_limit(options);
    let mut buf = vec![0u8; options.buffer_size.max(1)];
    let mut received = 0u64;
    loop {
        let n = read_some(conn, &mut buf, options.idle_timeout, "receiving the file").await?;
        if n == 0 {
            break;
        }
        if received + n as u64 > limit {
            return Err(Error::Oversize { limit });
        }
        state.open_in_place(&mut buf[..n])?;
        sink.write_all(&buf[..n]).await.map_err(Error::io("writing the received file"))?;
        received += n as u64;
    }
    check_length(options, received)?;
    sink.flush().await.map_err(Error::io("writing the received file"))?;
    Ok((received, state.checksum()))
}

fn receive_limit(options: &ReceiveOptions) -> u64 {
    options.expected_size.map_or(options.max_size, |size| size.min(options.max_size))
}

fn check_length(options: &ReceiveOptions, received: u64) -> Result<()> {
    match options.expected_size {
        Some(expected) if received != expected => {
            Err(Error::Truncated { during: "receiving the file", expected, received })
        }
        _ => Ok(()),
    }
}

/// [`receive_stream`] on several threads: whole segments are read, decrypted at their keystream
/// offsets on the cipher pool, then hashed and written in order here.
async fn receive_parallel<W: AsyncWrite + Unpin>(
    conn: &mut TcpStream,
    mut keystream: ParallelKeystream,
    options: &ReceiveOptions,
    sink: &mut W,
) -> Result<(u64, Checksum)> {
    let limit = receive_limit(options);
    let mut hasher = Hasher::new();
    let mut received = 0u64;
    let mut ended = false;
    loop {
        let free = if ended { None } else { keystream.take_buffer() };
        if let Some(mut buf) = free {
            let mut filled = 0;
            while filled < buf.len() {
                let n =
                    read_some(conn, &mut buf[filled..], options.idle_timeout, "receiving the file").await?;
                if n == 0 {
                    ended = true;
                    break;
                }
                if received + n as u64 > limit {
                    return Err(Error::Oversize { limit });
                }
                received += n as u64;
                filled += n;
            }
            keystream.push(buf, 0, filled)?;
            continue;
        }
        let Some(segment) = keystream.pop().await else { break };
        let (buf, len) = segment?;
        hasher.update(&buf[..len]);
        sink.write_all(&buf[..len]).await.map_err(Error::io("writing the received file"))?;
        keystream.recycle(buf);
    }
    check_length(options, received)?;
    sink.flush().await.map_err(Error::io("writing the received file"))?;
    Ok((received, hasher.digest()))
}

async fn read_some(
    conn: &mut TcpStream,
    buf: &mut [u8],
    idle: Duration,
    during: &'static str,
) -> Result<usize> {
    with_timeout(idle, during, async { conn.read(buf).await.map_err(Error::io(during)) }).await
}

/// Adapts a callback to a receive sink: each decrypted chunk is handed to `f` as it arrives; an error
/// from `f` stops the receive.
pub struct CallbackSink<F>(pub F);

impl<F: FnMut(&[u8]) -> io::Result<()> + Unpin> AsyncWrite for CallbackSink<F> {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready((self.0)(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The cipher threads of a receiver: `flag` (`--cipher-threads`) when given, else
/// `NORMAN_CIPHER_THREADS`, else 0 (what the machine has); checked as [`norman::AppConfig`] checks
/// them, so `norman send` and `norman receive` refuse the same values.
pub fn cipher_threads(flag: Option<usize>) -> std::result::Result<usize, String> {
    if let Some(threads) = flag {
        let config = norman::AppConfig { cipher_threads: threads, ..norman::AppConfig::default() };
        config.validate().map_err(|e| format!("--cipher-threads: {e}"))?;
        return Ok(threads);
    }
    const VAR: &str = "NORMAN_CIPHER_THREADS";
    let config =
        norman::AppConfig::from_lookup(|name| if name == VAR { std::env::var(VAR).ok() } else { None })
            .map_err(|e| e.to_string())?;
    Ok(config.cipher_threads)
}

/// Fresh random key, nonce and a `header_len`-byte authentication header, as a backend issues them
/// for a pairing.
pub fn generate_secrets(header_len: usize) -> StreamSecrets {
    use rand::RngCore;
    let mut rng = rand::rngs::OsRng;
    let mut key = [0u8; norman::socket::KEY_LEN];
    let mut nonce = [0u8; norman::socket::NONCE_LEN];
    let mut header = vec![0u8; header_len];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut nonce);
    rng.fill_bytes(&mut header);
    let secrets = StreamSecrets { key: key.into(), nonce: nonce.into(), header: header.into() };
    key.zeroize();
    secrets
}
