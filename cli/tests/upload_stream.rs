//! Writer to receiver over real loopback sockets, and every way an upload can go wrong.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use norman::socket::{SocketClient, SocketPairingResponse, StreamSecrets, UploadStream};
use norman::{AppConfig, Checksum, Error};
use norman_cli::receiver::{generate_secrets, CallbackSink, ReceiveOptions, UploadReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn receiver(
    secrets: &StreamSecrets,
    options: ReceiveOptions,
) -> (UploadReceiver, SocketPairingResponse) {
    let r = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await.unwrap();
    let pairing = loopback_pairing(secrets, r.local_addr().unwrap().port());
    (r, pairing)
}

fn quick_config() -> AppConfig {
    AppConfig { timeout: Duration::from_secs(5), ..AppConfig::default() }
}

fn dir_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn random_sizes_and_chunkings_round_trip() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut sizes: Vec<usize> = vec![0, 1, 63, 64, 65, 4 << 20];
    sizes.extend((0..10).map(|_| next(3 << 20) as usize));
    for (i, size) in sizes.into_iter().enumerate() {
        let content = random_bytes(size, i as u64 + 1);
        let secrets = generate_secrets(16 + i);
        let options = ReceiveOptions { expected_size: Some(size as u64), ..ReceiveOptions::default() };
        let (recv, pairing) = receiver(&secrets, options).await;
        let config = AppConfig { chunk_size: 1 + next(256 * 1024) as usize, ..quick_config() };
        let max_write = 1 + next(1 << 20) as usize;
        let data = content.clone();
        let sender = tokio::spawn(async move {
            let mut upload = SocketClient::new(config).open(&pairing).await.unwrap();
            let mut rest = &data[..];
            let mut k = max_write as u64;
            while !rest.is_empty() {
                k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let n = (1 + (k >> 33) as usize % max_write).min(rest.len());
                upload.write(&rest[..n]).await.unwrap();
                rest = &rest[n..];
            }
            upload.finish().await.unwrap()
        });
        let mut out = Vec::new();
        let got = recv.receive(&mut out).await.unwrap();
        let sent = sender.await.unwrap();
        assert_eq!(out.len(), size);
        assert!(out == content, "content differs for size {size}");
        assert_eq!(got.checksum, Checksum::of(&content));
        assert_eq!(sent.checksum, got.checksum);
        assert_eq!((sent.bytes, got.bytes), (size as u64, size as u64));
    }
}

#[tokio::test]
async fn write_and_digest_from_a_file_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.bin");
    let content = random_bytes(3 * 1024 * 1024 + 5, 42);
    std::fs::write(&src, &content).unwrap();
    let secrets = generate_secrets(32);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("received.bin");
    let dest2 = dest.clone();
    let receiving = tokio::spawn(async move { recv.receive_to_file(&dest2).await });
    let mut file = tokio::fs::File::open(&src).await.unwrap();
    let sent = SocketClient::new(quick_config()).write_and_digest(&pairing, &mut file).await.unwrap();
    let got = receiving.await.unwrap().unwrap();
    assert_eq!(sent.checksum, Checksum::of(&content));
    assert_eq!(got.checksum, sent.checksum);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    let names: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("received.bin")], "no temporary file left");
}

#[tokio::test]
async fn write_streams_back_the_plaintext_chunks() {
    let content = random_bytes(1_000_003, 7);
    let secrets = generate_secrets(20);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let receiving = tokio::spawn(async move {
        let mut out = Vec::new();
        recv.receive(&mut out).await.map(|r| (r, out))
    });
    let client = SocketClient::new(AppConfig { chunk_size: 100_000, ..quick_config() });
    let mut echoed = Vec::new();
    let mut chunks = 0;
    {
        let stream = client.write(&pairing, &content[..]);
        futures_util::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(!chunk.is_empty() && chunk.len() <= 100_000);
            echoed.extend_from_slice(&chunk);
            chunks += 1;
        }
    }
    let (got, out) = receiving.await.unwrap().unwrap();
    assert_eq!(chunks, 11);
    assert!(echoed == content && out == content);
    assert_eq!(got.checksum, Checksum::of(&content));
}

#[tokio::test]
async fn callback_sink_sees_every_byte_and_can_stop_the_receive() {
    let content = random_bytes(500_000, 9);
    let secrets = generate_secrets(16);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let data = content.clone();
    let sender = tokio::spawn(async move {
        SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &data[..]).await
    });
    let mut seen = Vec::new();
    let got = recv
        .receive(&mut CallbackSink(|chunk: &[u8]| {
            seen.extend_from_slice(chunk);
            Ok(())
        }))
        .await
        .unwrap();
    sender.await.unwrap().unwrap();
    assert!(seen == content);
    assert_eq!(got.bytes, 500_000);

    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let data = content.clone();
    let sender = tokio::spawn(async move {
        SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &data[..]).await
    });
    let err = recv
        .receive(&mut CallbackSink(|_: &[u8]| Err(std::io::Error::other("disk full"))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    let _ = sender.await.unwrap();
}

#[tokio::test]
async fn tampered_header_is_rejected_and_nothing_is_stored() {
    let secrets = generate_secrets(32);
    let (recv, _) = receiver(&secrets, ReceiveOptions::default()).await;
    let port = recv.local_addr().unwrap().port();
    // Same key and nonce, one bit of the header flipped.
    let mut tampered = secrets.clone();
    let mut header = tampered.header.expose().clone();
    header[5] ^= 0x01;
    tampered.header = header.into();
    let pairing = loopback_pairing(&tampered, port);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    let receiving = tokio::spawn(async move { recv.receive_to_file(&dest).await });
    let _ = SocketClient::new(quick_config())
        .write_and_digest(&pairing, &mut &random_bytes(200_000, 1)[..])
        .await;
    let err = receiving.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::AuthHeaderMismatch), "{err:?}");
    assert!(dir_is_empty(dir.path()), "a rejected upload leaves no file");
}

#[tokio::test]
async fn wrong_key_is_rejected() {
    let secrets = generate_secrets(16);
    let (recv, _) = receiver(&secrets, ReceiveOptions::default()).await;
    let mut other = generate_secrets(16);
    other.header = secrets.header.clone();
    let pairing = loopback_pairing(&other, recv.local_addr().unwrap().port());
    let receiving = tokio::spawn(async move { recv.receive(&mut Vec::new()).await });
    let _ = SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &b"hello"[..]).await;
    assert!(matches!(receiving.await.unwrap(), Err(Error::AuthHeaderMismatch)));
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let pairing = loopback_pairing(&generate_secrets(16), port);
    let err = SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &b"x"[..]).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn invalid_pairing_fails_before_connecting() {
    let mut pairing = loopback_pairing(&generate_secrets(16), 9);
    pairing.nonce = b64(&[0u8; 16]);
    let err = SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &b"x"[..]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidPairing { field: "nonce", .. }), "{err:?}");
}

#[tokio::test]
async fn writer_gets_an_error_when_the_peer_resets_mid_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pairing = loopback_pairing(&generate_secrets(16), listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 100_000];
        let _ = conn.read_exact(&mut buf).await;
        conn.set_zero_linger().unwrap();
        drop(conn);
    });
    let big = vec![0u8; 64 << 20];
    let err = SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &big[..]).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn writer_times_out_when_the_receiver_stops_reading() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pairing = loopback_pairing(&generate_secrets(16), listener.local_addr().unwrap().port());
    let holder = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let config = AppConfig { timeout: Duration::from_millis(300), ..AppConfig::default() };
    let big = vec![0u8; 256 << 20];
    let err = SocketClient::new(config).write_and_digest(&pairing, &mut &big[..]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    holder.abort();
}

/// Sends the encrypted header and `body` by hand, then ends the connection with FIN or RST.
async fn raw_upload(secrets: &StreamSecrets, port: u16, body: &[u8], header_too: bool, reset: bool) {
    let mut state = norman::socket::StreamCipherState::new(secrets);
    let mut wire =
        if header_too { secrets.header.expose().clone() } else { secrets.header.expose()[..3].to_vec() };
    state.apply_unhashed(&mut wire).unwrap();
    let mut body = body.to_vec();
    state.seal_in_place(&mut body).unwrap();
    wire.extend_from_slice(&body);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(&wire).await.unwrap();
    if reset {
        conn.set_zero_linger().unwrap();
    } else {
        conn.shutdown().await.unwrap();
    }
    drop(conn);
}

#[tokio::test]
async fn receiver_errors_leave_no_file() {
    let secrets = generate_secrets(16);
    let body = random_bytes(10_000, 3);
    /// (name, expected size, send the whole header?, end with RST?, body length, expected error).
    type Case = (&'static str, Option<u64>, bool, bool, usize, fn(&Error) -> bool);
    let cases: [Case; 4] = [
        ("reset mid-stream", None, true, true, 10_000, |e| matches!(e, Error::Io { .. })),
        ("early close", Some(20_000), true, false, 10_000, |e| {
            matches!(e, Error::Truncated { expected: 20_000, received: 10_000, .. })
        }),
        ("oversize", Some(5_000), true, false, 10_000, |e| matches!(e, Error::Oversize { limit: 5_000 })),
        ("truncated header", None, false, false, 0, |e| {
            matches!(e, Error::Truncated { during: "reading the authentication header", received: 3, .. })
        }),
    ];
    for (name, expected_size, header_too, reset, len, check) in cases {
        let options = ReceiveOptions { expected_size, ..ReceiveOptions::default() };
        let recv = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await.unwrap();
        let port = recv.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        let receiving = tokio::spawn(async move { recv.receive_to_file(&dest).await });
        raw_upload(&secrets, port, &body[..len], header_too, reset).await;
        let err = receiving.await.unwrap().unwrap_err();
        assert!(check(&err), "{name}: {err:?}");
        assert!(dir_is_empty(dir.path()), "{name}: left a file behind");
    }
}

#[tokio::test]
async fn aborted_upload_is_an_error_not_a_short_file() {
    let secrets = generate_secrets(16);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let receiving = tokio::spawn(async move { recv.receive(&mut Vec::new()).await });
    let mut upload = UploadStream::connect(&pairing.validate().unwrap(), &quick_config()).await.unwrap();
    upload.write(&[1u8; 300_000]).await.unwrap();
    upload.flush().await.unwrap();
    upload.abort();
    let err = receiving.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn receiver_times_out_idle_and_unused_pairings() {
    let secrets = generate_secrets(16);
    let options = ReceiveOptions { accept_timeout: Duration::from_millis(200), ..ReceiveOptions::default() };
    let (recv, _) = receiver(&secrets, options).await;
    let err = recv.receive(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { during: "waiting for the upload connection", .. }), "{err:?}");

    let options = ReceiveOptions { idle_timeout: Duration::from_millis(200), ..ReceiveOptions::default() };
    let (recv, _) = receiver(&secrets, options).await;
    let port = recv.local_addr().unwrap().port();
    let receiving = tokio::spawn(async move { recv.receive(&mut Vec::new()).await });
    let silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let err = receiving.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout { during: "reading the authentication header", .. }), "{err:?}");
    drop(silent);
}

#[tokio::test]
async fn a_pairing_accepts_one_connection_only() {
    let secrets = generate_secrets(16);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let receiving = tokio::spawn(async move { recv.receive(&mut Vec::new()).await });
    SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &b"first"[..]).await.unwrap();
    assert_eq!(receiving.await.unwrap().unwrap().bytes, 5);
    let err =
        SocketClient::new(quick_config()).write_and_digest(&pairing, &mut &b"second"[..]).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn summary_so_far_matches_the_finished_upload() {
    let secrets = generate_secrets(16);
    let (recv, pairing) = receiver(&secrets, ReceiveOptions::default()).await;
    let receiving = tokio::spawn(async move { recv.receive(&mut Vec::new()).await });
    let mut upload = SocketClient::new(quick_config()).open(&pairing).await.unwrap();
    upload.write(b"abc").await.unwrap();
    let summary = upload.summary();
    assert_eq!(summary.checksum.to_hex(), "78af5f94892f3950");
    let done = upload.finish().await.unwrap();
    assert_eq!(done, summary);
    assert_eq!(receiving.await.unwrap().unwrap().checksum, done.checksum);
}
