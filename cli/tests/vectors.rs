//! The shared vectors (an independent Python implementation) reproduced byte-exact: the wire bytes
//! and the checksum, under many chunkings, through the real writer over a loopback socket and through
//! the receiver.

mod common;

use common::*;
use norman::socket::{StreamCipherState, UploadStream};
use norman::{AppConfig, Checksum};
use norman_cli::receiver::{ReceiveOptions, UploadReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn chunkings(len: usize) -> Vec<usize> {
    let mut sizes = vec![len.max(1), 7, 16, 63, 64, 65, 4096, 65536];
    if len <= 4096 {
        sizes.push(1);
    }
    sizes
}

/// Runs the real writer against a plain listener that records every byte on the wire.
async fn capture_wire(
    v: &Vector,
    write_size: usize,
    chunk_size: usize,
    cipher_threads: usize,
) -> (Vec<u8>, norman::socket::UploadSummary) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut pairing = v.pairing.clone();
    pairing.port = listener.local_addr().unwrap().port() as i64;
    let reader = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut wire = Vec::new();
        conn.read_to_end(&mut wire).await.unwrap();
        wire
    });
    let config = AppConfig { chunk_size, cipher_threads, ..AppConfig::default() };
    let mut upload = UploadStream::connect(&pairing.validate().unwrap(), &config).await.unwrap();
    for piece in v.content.chunks(write_size) {
        upload.write(piece).await.unwrap();
    }
    let summary = upload.finish().await.unwrap();
    (reader.await.unwrap(), summary)
}

fn check_wire(v: &Vector, wire: &[u8], how: &str) {
    assert_eq!(wire.len(), v.wire_len, "{} ({how}): wire length", v.name);
    assert_eq!(sha256_hex(wire), v.wire_sha256, "{} ({how}): wire sha256", v.name);
    if let Some(hex) = &v.wire_hex {
        assert_eq!(&hex::encode(wire), hex, "{} ({how}): wire bytes", v.name);
    }
}

#[test]
fn generator_reproduces_the_vector_content() {
    for v in vectors() {
        assert_eq!(sha256_hex(&v.content), v.content_sha256, "{}", v.name);
        assert_eq!(Checksum::of(&v.content).to_hex(), v.checksum, "{}", v.name);
    }
}

#[test]
fn fused_pass_matches_every_vector_for_every_chunking() {
    for v in vectors() {
        let secrets = v.pairing.validate().unwrap().secrets;
        let mut sizes = chunkings(v.content.len());
        sizes.push(1);
        for size in sizes {
            let mut state = StreamCipherState::new(&secrets);
            let mut wire = secrets.header.expose().clone();
            state.apply_unhashed(&mut wire).unwrap();
            for piece in v.content.chunks(size) {
                let mut buf = piece.to_vec();
                state.seal_in_place(&mut buf).unwrap();
                wire.extend_from_slice(&buf);
            }
            check_wire(&v, &wire, &format!("in place, {size}-byte pieces"));
            assert_eq!(state.checksum().to_hex(), v.checksum, "{} ({size})", v.name);
        }
    }
}

#[tokio::test]
async fn writer_sends_the_vector_wire_bytes_over_tcp() {
    for v in vectors() {
        for write_size in chunkings(v.content.len()) {
            // A 1-byte send buffer means one syscall per byte: keep that to the small vectors.
            let buffers: &[usize] = if v.content.len() <= 4096 { &[1, 100, 65536] } else { &[100, 65536] };
            // One cipher thread, and the parallel path (whose segments are 256 KiB at least).
            for (&chunk_size, threads) in buffers.iter().flat_map(|c| [(c, 1), (c, 3)]) {
                let (wire, summary) = capture_wire(&v, write_size, chunk_size, threads).await;
                let how = format!("writes of {write_size}, send buffer {chunk_size}, {threads} threads");
                check_wire(&v, &wire, &how);
                assert_eq!(summary.checksum.to_hex(), v.checksum, "{} ({how})", v.name);
                assert_eq!(summary.bytes, v.content.len() as u64);
            }
        }
    }
}

#[tokio::test]
async fn receiver_decodes_the_vector_wire_bytes() {
    for v in vectors() {
        let (wire, _) = capture_wire(&v, 65536, 65536, 1).await;
        let secrets = v.pairing.validate().unwrap().secrets;
        let buffers: &[usize] =
            if v.content.len() <= 4096 { &[1, 13, 4096, 1 << 20] } else { &[13, 4096, 1 << 20] };
        for (&buffer_size, cipher_threads) in buffers.iter().flat_map(|b| [(b, 1), (b, 3)]) {
            let options = ReceiveOptions {
                expected_size: Some(v.content.len() as u64),
                buffer_size,
                cipher_threads,
                ..ReceiveOptions::default()
            };
            let receiver = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await.unwrap();
            let addr = receiver.local_addr().unwrap();
            let wire = wire.clone();
            let sender = tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                // Dribble the wire in odd pieces: the receiver must not care where boundaries fall.
                for piece in wire.chunks(997) {
                    conn.write_all(piece).await.unwrap();
                }
                conn.shutdown().await.unwrap();
            });
            let mut out = Vec::new();
            let got = receiver.receive(&mut out).await.unwrap();
            sender.await.unwrap();
            assert_eq!(out, v.content, "{} (buffer {buffer_size}, {cipher_threads} threads)", v.name);
            assert_eq!(got.checksum.to_hex(), v.checksum);
            assert_eq!(got.bytes, v.content.len() as u64);
        }
    }
}
