//! The parallel cipher path (cipher_threads > 1) against the single-thread one: the same bytes on the
//! wire for random sizes, write chunkings and read sizes, over real loopback sockets; and the
//! receiver decrypting on several threads gets the same file and checksum as on one.

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use norman::socket::{StreamCipherState, StreamSecrets, UploadStream};
use norman::{AppConfig, Checksum};
use norman_cli::receiver::{generate_secrets, ReceiveOptions, UploadReceiver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;

/// xorshift64: a reproducible stream of bounded numbers.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// What one thread sends: the header and the content under one keystream, computed in memory.
fn expected_wire(secrets: &StreamSecrets, content: &[u8]) -> Vec<u8> {
    let mut state = StreamCipherState::new(secrets);
    let mut wire = secrets.header.expose().clone();
    state.apply_unhashed(&mut wire).unwrap();
    let mut body = content.to_vec();
    state.seal_in_place(&mut body).unwrap();
    wire.extend_from_slice(&body);
    wire
}

/// A reader that hands out at most a few bytes per read, chosen by its own generator.
struct Dribble<'a> {
    data: &'a [u8],
    rng: Rng,
    max: usize,
}

impl AsyncRead for Dribble<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let max = self.max as u64;
        let n = (1 + self.rng.below(max) as usize).min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

enum Feed {
    /// `UploadStream::write` with pieces of at most this many bytes.
    Writes(usize),
    /// `UploadStream::write_from` a reader returning at most this many bytes per read.
    Reader(usize),
}

async fn send(
    secrets: &StreamSecrets,
    content: &[u8],
    config: AppConfig,
    feed: Feed,
    seed: u64,
) -> (Vec<u8>, norman::socket::UploadSummary) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pairing = loopback_pairing(secrets, listener.local_addr().unwrap().port()).validate().unwrap();
    let capture = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut wire = Vec::new();
        conn.read_to_end(&mut wire).await.unwrap();
        wire
    });
    let mut upload = UploadStream::connect(&pairing, &config).await.unwrap();
    let mut rng = Rng(seed);
    match feed {
        Feed::Writes(max) => {
            let mut rest = content;
            while !rest.is_empty() {
                let n = (1 + rng.below(max as u64) as usize).min(rest.len());
                upload.write(&rest[..n]).await.unwrap();
                // Now and then a flush: a partial segment goes out on its own.
                if rng.below(8) == 0 {
                    upload.flush().await.unwrap();
                }
                rest = &rest[n..];
            }
        }
        Feed::Reader(max) => {
            let sent = upload.write_from(&mut Dribble { data: content, rng, max }).await.unwrap();
            assert_eq!(sent, content.len() as u64);
        }
    }
    let summary = upload.finish().await.unwrap();
    (capture.await.unwrap(), summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_and_single_thread_paths_send_the_same_bytes() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    // Around the hand-off (128 KiB) and segment (256 KiB to 2 MiB here) sizes, then random ones.
    let mut sizes = vec![0usize, 1, 131_071, 131_072, 262_144, 262_145, (3 << 20) - 5];
    sizes.extend((0..5).map(|_| rng.below(5 << 20) as usize));
    for (i, size) in sizes.into_iter().enumerate() {
        let content = random_bytes(size, 100 + i as u64);
        let secrets = generate_secrets(16 + i % 20);
        let want = expected_wire(&secrets, &content);
        let chunk_size = 1 + rng.below(2 << 20) as usize;
        for threads in [1usize, 2, 3, 5] {
            let config = AppConfig {
                chunk_size,
                cipher_threads: threads,
                timeout: Duration::from_secs(10),
                ..AppConfig::default()
            };
            let feed = if rng.below(2) == 0 {
                Feed::Writes(1 + rng.below(3 << 20) as usize)
            } else {
                Feed::Reader(1 + rng.below(1 << 20) as usize)
            };
            let how = format!(
                "size {size}, chunk {chunk_size}, {threads} threads, {}",
                match feed {
                    Feed::Writes(n) => format!("writes up to {n}"),
                    Feed::Reader(n) => format!("reads up to {n}"),
                }
            );
            let (wire, summary) = send(&secrets, &content, config, feed, rng.below(u64::MAX)).await;
            assert_eq!(wire.len(), want.len(), "{how}: wire length");
            assert!(wire == want, "{how}: wire bytes differ");
            assert_eq!(summary.bytes, size as u64, "{how}");
            assert_eq!(summary.checksum, Checksum::of(&content), "{how}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_decrypts_the_same_on_one_and_several_threads() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut sizes = vec![0usize, 5, 131_072, (2 << 20) + 3];
    sizes.extend((0..3).map(|_| rng.below(5 << 20) as usize));
    for (i, size) in sizes.into_iter().enumerate() {
        let content = random_bytes(size, 200 + i as u64);
        let secrets = generate_secrets(32);
        let wire = expected_wire(&secrets, &content);
        let buffer_size = 1 + rng.below(2 << 20) as usize;
        for threads in [1usize, 2, 4] {
            let options = ReceiveOptions {
                expected_size: Some(size as u64),
                buffer_size,
                cipher_threads: threads,
                ..ReceiveOptions::default()
            };
            let receiver = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await.unwrap();
            let addr = receiver.local_addr().unwrap();
            let (wire, piece) = (wire.clone(), 1 + rng.below(300_000) as usize);
            let sender = tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                for part in wire.chunks(piece) {
                    conn.write_all(part).await.unwrap();
                }
                conn.shutdown().await.unwrap();
            });
            let mut out = Vec::new();
            let got = receiver.receive(&mut out).await.unwrap();
            sender.await.unwrap();
            let how = format!("size {size}, buffer {buffer_size}, {threads} threads, pieces of {piece}");
            assert!(out == content, "{how}: content differs");
            assert_eq!((got.bytes, got.checksum), (size as u64, Checksum::of(&content)), "{how}");
        }
    }
}

#[tokio::test]
async fn parallel_receiver_refuses_oversize_and_short_streams() {
    let content = random_bytes(3 << 20, 7);
    let secrets = generate_secrets(32);
    let wire = expected_wire(&secrets, &content);
    for (expected, oversize) in [((2 << 20) as u64, true), ((4 << 20) as u64, false)] {
        let options =
            ReceiveOptions { expected_size: Some(expected), cipher_threads: 3, ..ReceiveOptions::default() };
        let receiver = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await.unwrap();
        let addr = receiver.local_addr().unwrap();
        let wire = wire.clone();
        let sender = tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            // The receiver may stop reading (oversize) before everything is written.
            let _ = conn.write_all(&wire).await;
            let _ = conn.shutdown().await;
        });
        let err = receiver.receive(&mut Vec::new()).await.unwrap_err();
        let _ = sender.await;
        let kind = err.kind();
        if oversize {
            assert_eq!(kind, norman::ErrorKind::Oversize, "{err}");
        } else {
            assert_eq!(kind, norman::ErrorKind::Truncated, "{err}");
        }
    }
}
