//! `norman msg` against itself: the commands' contract (lines, exit codes, bad arguments), every
//! layer setting end to end, malformed frames against the server, 1,000 clients with nothing lost,
//! a subscriber that stops reading, and UDP nodes discovering each other on loopback.

mod msg_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use msg_support::*;
use norman::msg::{Header, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NETAIO_LAYERS: [&str; 4] = ["--secret", "s3cret", "--cipher-key", "k3y"];

fn aead_key_file(dir: &std::path::Path, byte: u8) -> String {
    let path = dir.join(format!("aead-{byte}.key"));
    std::fs::write(&path, [byte; 32]).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn crud_and_pubsub_with_no_layers() {
    let mut serve = MsgServe::start(&[]);
    cli_crud_and_pubsub(serve.port(), &[]);
    assert!(serve.proc.terminate().success(), "{}", serve.proc.stderr());
}

#[test]
fn crud_and_pubsub_with_netaio_layers_outer_and_inner() {
    let layers = ["--secret", "s", "--cipher-key", "k", "--inner-secret", "s2", "--inner-cipher-key", "k2"];
    let serve = MsgServe::start(&layers);
    cli_crud_and_pubsub(serve.port(), &layers);
}

#[test]
fn crud_and_pubsub_with_the_aead_layer() {
    let dir = tempfile::tempdir().unwrap();
    let key = aead_key_file(dir.path(), 7);
    let layers = ["--aead-key-file", key.as_str()];
    let serve = MsgServe::start(&layers);
    cli_crud_and_pubsub(serve.port(), &layers);

    // Another key, or no layer at all: refused with an error reply, exit 1.
    let other = aead_key_file(dir.path(), 8);
    let out = request(serve.port(), &["--aead-key-file", &other], &["--type", "request", "--uri", "echo"]);
    assert_eq!(out.status.code(), Some(1), "{:?} {}", stdout_lines(&out), stderr_of(&out));
    assert!(stdout_lines(&out).iter().all(|l| !l.starts_with("RESPOND_URI")), "{:?}", stdout_lines(&out));
    let plain = request(serve.port(), &[], &["--type", "request", "--uri", "echo"]);
    assert_eq!(plain.status.code(), Some(1), "{:?} {}", stdout_lines(&plain), stderr_of(&plain));
}

#[test]
fn a_wrong_netaio_secret_gets_auth_error_and_the_server_keeps_serving() {
    let serve = MsgServe::start(&NETAIO_LAYERS);
    let out = request(
        serve.port(),
        &["--secret", "wrong", "--cipher-key", "k3y"],
        &["--type", "request", "--uri", "echo"],
    );
    assert_eq!(stdout_lines(&out), ["AUTH_ERROR uri=ERROR content=HMAC auth failed"], "{}", stderr_of(&out));
    assert_clean_failure(&out, "AUTH_ERROR");
    assert_eq!(out.status.code(), Some(1));
    let ok =
        request(serve.port(), &NETAIO_LAYERS, &["--type", "request", "--uri", "echo", "--content", "hi"]);
    assert_reply(&ok, &["RESPOND_URI uri=echo content=hi"]);
}

#[test]
fn subscribe_timeout_and_count() {
    let serve = MsgServe::start(&[]);
    // No --count: notifications until the deadline, then exit 0.
    let started = Instant::now();
    let out = msg_request(&serve.addr, &["--type", "subscribe", "--uri", "quiet", "--timeout-ms", "1500"]);
    assert_reply(&out, &["CONFIRM_SUBSCRIBE uri=quiet content="]);
    assert!(started.elapsed() < Duration::from_secs(5));
    // --count not reached by the deadline: exit 1.
    let out = msg_request(
        &serve.addr,
        &["--type", "subscribe", "--uri", "quiet", "--count", "1", "--timeout-ms", "1500"],
    );
    assert_eq!(stdout_lines(&out), ["CONFIRM_SUBSCRIBE uri=quiet content="], "{}", stderr_of(&out));
    assert_clean_failure(&out, "notification");
}

#[test]
fn bad_arguments_and_unreachable_peers_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, [1u8; 31]).unwrap();
    let short = short.to_str().unwrap();
    let missing = dir.path().join("missing.key");
    let missing = missing.to_str().unwrap();
    let content_missing = dir.path().join("nothing.bin");

    let run = |args: &[&str]| {
        let mut cmd = norman();
        cmd.arg("msg").args(args);
        run_with_timeout(cmd, Duration::from_secs(20))
    };
    assert_clean_failure(&run(&["serve", "--listen", "not an address"]), "--listen");
    assert_clean_failure(&run(&["serve", "--listen", "127.0.0.1:0", "--aead-key-file", short]), "32");
    assert_clean_failure(
        &run(&["serve", "--listen", "127.0.0.1:0", "--aead-key-file", missing]),
        "missing.key",
    );
    assert_clean_failure(&run(&["serve", "--listen", "127.0.0.1:0", "--secret", ""]), "--secret");
    assert_clean_failure(
        &run(&["serve", "--listen", "127.0.0.1:0", "--secret", "s", "--aead-key-file", short]),
        "--aead-key-file",
    );
    assert_clean_failure(&run(&["request", "127.0.0.1:9", "--type", "nonsense", "--uri", "x"]), "nonsense");
    assert_clean_failure(&run(&["request", "127.0.0.1:9", "--type", "request"]), "--uri");
    assert_clean_failure(
        &run(&[
            "request",
            "127.0.0.1:9",
            "--type",
            "create",
            "--uri",
            "x",
            "--content",
            "a",
            "--content-file",
            short,
        ]),
        "--content",
    );
    assert_clean_failure(
        &run(&[
            "request",
            "127.0.0.1:9",
            "--type",
            "create",
            "--uri",
            "x",
            "--content-file",
            content_missing.to_str().unwrap(),
        ]),
        "nothing.bin",
    );
    let big = "x".repeat(70_000);
    assert_clean_failure(
        &run(&["request", "127.0.0.1:9", "--type", "create", "--uri", "x", "--content", &big]),
        "content",
    );
    assert_clean_failure(
        &run(&["node", "--listen", "127.0.0.1:0", "--id", "n", "--group", "127.0.0.2"]), // not a multicast group
        "--group",
    );

    // Nothing listens on a port we just held and let go: connection refused, one line, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run(&[
        "request",
        &format!("127.0.0.1:{port}"),
        "--type",
        "request",
        "--uri",
        "x",
        "--timeout-ms",
        "2000",
    ]);
    assert_clean_failure(&out, &port.to_string());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));

    // A busy port for serve.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    assert_clean_failure(&run(&["serve", "--listen", &addr]), &addr);
}

// ------------------------------------------------------------------------------- raw frames

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Message> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await?;
    let header = Header::decode(&head).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut payload = vec![0u8; header.payload_len()];
    stream.read_exact(&mut payload).await?;
    Message::decode_parts(header, Bytes::from(payload)).map_err(|e| std::io::Error::other(e.to_string()))
}

fn frame(t: MessageType, uri: &'static [u8], content: Vec<u8>) -> Vec<u8> {
    Message::new(t, Bytes::from_static(uri), content).encode().unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// What netaio's server does with malformed input (WIRE.md §5), minus its crashes: a bad checksum
/// gets ERROR `invalid message` and the connection stays; an unknown type, bad auth data or a uri
/// length past the body closes that connection; the server serves everyone else throughout.
#[test]
fn malformed_frames_against_the_server() {
    let serve = MsgServe::start(&[]);
    let addr = serve.addr.clone();
    rt().block_on(async {
        let echo = frame(MessageType::REQUEST_URI, b"echo", b"hi".to_vec());

        let mut bad_sum = echo.clone();
        bad_sum[5] ^= 0xff;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&bad_sum).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap().unwrap();
        assert_eq!(
            (reply.message_type, &reply.uri[..], &reply.content[..]),
            (MessageType::ERROR, &b"ERROR"[..], &b"invalid message"[..])
        );
        s.write_all(&echo).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap().unwrap();
        assert_eq!(
            (reply.message_type, &reply.content[..]),
            (MessageType::RESPOND_URI, &b"hi"[..]),
            "connection kept"
        );

        let mut unknown_type = echo.clone();
        unknown_type[0] = 17;
        let mut bad_auth = echo.clone();
        bad_auth[9..12].copy_from_slice(&[0x4d, 0x40, 0x01]);
        let mut packable = echo.clone();
        packable[9..12].copy_from_slice(&[0x14, 0x00, 0x00]);
        let mut long_uri = echo.clone();
        let body = 9 + 3;
        long_uri[body..body + 2].copy_from_slice(&200u16.to_be_bytes());
        let fixed_sum = crc32fast_hash(&long_uri[body..]);
        long_uri[5..9].copy_from_slice(&fixed_sum.to_be_bytes());
        for (name, bytes) in [
            ("unknown type", unknown_type),
            ("bad auth data", bad_auth),
            ("PACKABLE auth", packable),
            ("uri past the body", long_uri),
        ] {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            // An ERROR saying why may come first (netaio says nothing); then the connection ends.
            loop {
                match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await {
                    Ok(Ok(m)) => assert_eq!(m.message_type, MessageType::ERROR, "{name}: {m:?}"),
                    Ok(Err(_)) => break,
                    Err(_) => panic!("{name}: the connection stayed open"),
                }
            }
        }

        // A header then silence, and a connection that closes mid-frame: neither hurts anyone.
        let mut half = TcpStream::connect(&addr).await.unwrap();
        half.write_all(&echo[..12]).await.unwrap();
        let mut cut = TcpStream::connect(&addr).await.unwrap();
        cut.write_all(&echo[..5]).await.unwrap();
        drop(cut);

        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&echo).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s)).await.unwrap().unwrap();
        assert_eq!(reply.content, Bytes::from_static(b"hi"));
        drop(half);
    });
}

/// CRC-32 (zlib's) without a dependency of our own: the frame of a valid message carries it.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// 1,000 connected clients, each sending 100 requests (echo, each content unique): every reply
/// arrives, on the right connection, with the right content; nothing is lost or mixed up.
#[test]
fn a_thousand_clients_a_hundred_requests_each() {
    const CLIENTS: usize = 1000;
    const REQUESTS: usize = 100;
    raise_nofile(4096);
    let serve = MsgServe::start(&[]);
    let addr = serve.addr.clone();
    let started = Instant::now();
    let total = rt().block_on(async move {
        // Every client connects first, so that all 1,000 are connected at once.
        let mut streams = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            streams.push(TcpStream::connect(&addr).await.expect("connect"));
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut tasks = Vec::with_capacity(CLIENTS);
        for (c, mut s) in streams.into_iter().enumerate() {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut ok = 0usize;
                for r in 0..REQUESTS {
                    let content = format!("client {c} request {r}").into_bytes();
                    s.write_all(&frame(MessageType::REQUEST_URI, b"echo", content.clone()))
                        .await
                        .expect("send");
                    let reply = read_frame(&mut s).await.expect("reply");
                    assert_eq!(reply.message_type, MessageType::RESPOND_URI);
                    assert_eq!(&reply.uri[..], b"echo");
                    assert_eq!(reply.content, content, "client {c} request {r}");
                    ok += 1;
                }
                ok
            }));
        }
        let mut total = 0;
        for t in tasks {
            total +=
                tokio::time::timeout(Duration::from_secs(120), t).await.expect("in time").expect("client");
        }
        total
    });
    assert_eq!(total, CLIENTS * REQUESTS);
    eprintln!(
        "{total} requests from {CLIENTS} clients in {:?}, server at {} KiB",
        started.elapsed(),
        serve.proc.rss_kib()
    );
}

/// A subscriber that stops reading while 64 MiB of notifications are published to it: the
/// server's resident memory stays bounded (its queue to that subscriber is bounded; the subscriber
/// is dropped or its notifications are), and the publisher is answered throughout.
#[test]
fn a_subscriber_that_stops_reading_does_not_grow_the_server() {
    const CONTENT: usize = 16 * 1024;
    const PUBLISHES: usize = 4096; // 64 MiB
    let serve = MsgServe::start(&[]);
    let addr = serve.addr.clone();
    let pid = serve.proc.pid();
    let (before, after) = rt().block_on(async move {
        let sub = std::net::TcpStream::connect(&addr).unwrap();
        set_rcvbuf(&sub, 4096);
        let mut sub = TcpStream::from_std({
            sub.set_nonblocking(true).unwrap();
            sub
        })
        .unwrap();
        sub.write_all(&frame(MessageType::SUBSCRIBE_URI, b"flood", Vec::new())).await.unwrap();
        let confirm = read_frame(&mut sub).await.unwrap();
        assert_eq!(confirm.message_type, MessageType::CONFIRM_SUBSCRIBE);
        // From here on the subscriber reads nothing.

        let mut publisher = TcpStream::connect(&addr).await.unwrap();
        let payload = vec![0x5au8; CONTENT];
        let publish = frame(MessageType::PUBLISH_URI, b"flood", payload);
        // Warm up (allocator arenas, buffers) before the baseline.
        for _ in 0..64 {
            publisher.write_all(&publish).await.unwrap();
            assert_eq!(read_frame(&mut publisher).await.unwrap().message_type, MessageType::OK);
        }
        let before = rss_kib(pid);
        let deadline = Instant::now() + Duration::from_secs(90);
        for i in 0..PUBLISHES {
            publisher.write_all(&publish).await.unwrap();
            let reply = tokio::time::timeout_at(deadline.into(), read_frame(&mut publisher))
                .await
                .unwrap_or_else(|_| panic!("publisher not answered within 90 s (at {i})"))
                .unwrap();
            assert_eq!(reply.message_type, MessageType::OK);
        }
        let after = rss_kib(pid);
        drop(sub);
        (before, after)
    });
    eprintln!(
        "server VmRSS {before} KiB before, {after} KiB after publishing 64 MiB to a stalled subscriber"
    );
    assert!(after < before + 24 * 1024, "grew from {before} KiB to {after} KiB");
}

fn set_rcvbuf(s: &std::net::TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a socket we own with a valid int option.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

// ------------------------------------------------------------------------------------- UDP

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two of our nodes on loopback, multicast pinned to 127.0.0.1 (`--interface`, the default too),
/// sharing one multicast port: each finds the other, and says `gone` when the other stops.
#[test]
fn two_nodes_discover_each_other_on_loopback() {
    let group_port = free_udp_port().to_string();
    let node = |id: &str, duration: &str| {
        let mut cmd = norman();
        cmd.args(["msg", "node", "--listen", "127.0.0.1:0", "--id", id])
            .args(["--interface", "127.0.0.1", "--multicast-port", &group_port])
            .args(["--every-ms", "100", "--peer-timeout-ms", "5000", "--duration-ms", duration])
            .args(["--secret", "s", "--cipher-key", "k"]);
        Proc::spawn(cmd)
    };
    let mut a = node("alpha", "8000");
    let a_addr = a.line(Duration::from_secs(20));
    let a_addr = a_addr.strip_prefix("norman msg node listening on ").expect("first line").to_owned();
    let mut b = node("beta", "1500");
    let b_addr = b.line(Duration::from_secs(20));
    let b_addr = b_addr.strip_prefix("norman msg node listening on ").expect("first line").to_owned();
    let (b_lines, status) = b.rest(Duration::from_secs(20));
    assert!(status.success(), "{b_lines:?} {}", b.stderr());
    assert!(b_lines.contains(&format!("peer alpha at {a_addr}")), "{b_lines:?}");
    // beta multicast DISCONNECT when it stopped: alpha says so long before its 5 s peer timeout.
    let (a_lines, found) = a.lines_until(Duration::from_secs(4), |l| l == "gone beta");
    assert!(found, "{a_lines:?} {}", a.stderr());
    assert_eq!(a_lines, [format!("peer beta at {b_addr}"), "gone beta".to_owned()]);
    assert!(a.terminate().success(), "{}", a.stderr());
}

/// `norman msg node` answers REQUEST_URI `echo` (here from a plain UDP socket, no layers).
#[test]
fn a_node_answers_echo() {
    let group_port = free_udp_port().to_string();
    let mut cmd = norman();
    cmd.args(["msg", "node", "--listen", "127.0.0.1:0", "--id", "echoer", "--multicast-port", &group_port]);
    let node = Proc::spawn(cmd);
    let addr = node.line(Duration::from_secs(20));
    let addr = addr.strip_prefix("norman msg node listening on ").expect("first line").to_owned();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&frame(MessageType::REQUEST_URI, b"echo", b"ping \x00\xff".to_vec()), &addr).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from.to_string(), addr);
    let reply = Message::decode(&Bytes::copy_from_slice(&buf[..n]), &Default::default()).unwrap();
    assert_eq!(reply.message_type, MessageType::RESPOND_URI);
    assert_eq!((&reply.uri[..], &reply.content[..]), (&b"echo"[..], &b"ping \x00\xff"[..]));
    // A malformed datagram is dropped and the node keeps answering.
    sock.send_to(b"\x00\x00", &addr).unwrap();
    sock.send_to(&frame(MessageType::REQUEST_URI, b"echo", b"again".to_vec()), &addr).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let reply = Message::decode(&Bytes::copy_from_slice(&buf[..n]), &Default::default()).unwrap();
    assert_eq!(&reply.content[..], b"again");
}
