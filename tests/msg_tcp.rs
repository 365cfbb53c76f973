//! TCP server and client on 127.0.0.1: every layer and nested layers, concurrent requests on one
//! connection, remote errors, pub/sub, reconnection, limits and timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use norman::msg::{
    handler, Aead, Backoff, Call, Client, ClientConfig, Key, Layers, Message, MessageType, NetaioHmac,
    NetaioStreamCipher, Server, ServerConfig,
};
use norman::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

fn echo_routes(server: &Server) {
    server.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _c: Call| async move {
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    server.on(MessageType::REQUEST_URI, Some(b"slow"), |m: Message, _c: Call| async move {
        let ms = u64::from_be_bytes(m.content[..8].try_into().unwrap());
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    server.on(MessageType::REQUEST_URI, Some(b"forbidden"), |m: Message, _c: Call| async move {
        Some(Message::error("not permitted", m.uri.clone()))
    });
    server.on(MessageType::REQUEST_URI, Some(b"never"), |_m: Message, _c: Call| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        None
    });
    server.on(MessageType::CREATE_URI, None, |m: Message, _c: Call| async move {
        Some(m.reply(MessageType::OK, Bytes::new()))
    });
    server.on(MessageType::SUBSCRIBE_URI, None, |m: Message, c: Call| async move {
        c.subscribe(&m.uri);
        Some(m.reply(MessageType::CONFIRM_SUBSCRIBE, Bytes::new()))
    });
    server.on(MessageType::UNSUBSCRIBE_URI, None, |m: Message, c: Call| async move {
        c.unsubscribe(&m.uri);
        Some(m.reply(MessageType::CONFIRM_UNSUBSCRIBE, Bytes::new()))
    });
    server.on(MessageType::PUBLISH_URI, None, |m: Message, c: Call| async move {
        c.server()?.notify(&m.uri, &m.content).await.ok()?;
        Some(m.reply(MessageType::OK, Bytes::new()))
    });
}

async fn start(config: ServerConfig) -> (Server, String) {
    let server = Server::new(config);
    echo_routes(&server);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    (server, addr.to_string())
}

async fn client(addr: &str, layers: Layers) -> Client {
    Client::connect(addr, ClientConfig { layers, ..Default::default() }).await.unwrap()
}

async fn check_echo(c: &Client) {
    for size in [0usize, 1, 1024, 60_000] {
        let content: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let r = c.request(MessageType::REQUEST_URI, b"echo", &content, T).await.unwrap();
        assert_eq!(r.message_type, MessageType::RESPOND_URI);
        assert_eq!(&r.uri[..], b"echo");
        assert_eq!(&r.content[..], &content[..]);
    }
    let r = c.create(b"x/y", b"data", T).await.unwrap();
    assert_eq!(r.message_type, MessageType::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer() {
    let key = [9u8; 32];
    type MakeLayers = Box<dyn Fn() -> Layers>;
    let stacks: Vec<(&str, MakeLayers)> = vec![
        ("none", Box::new(Layers::new)),
        ("hmac", Box::new(|| Layers::netaio(Some(b"secret"), None))),
        ("cipher", Box::new(|| Layers::netaio(None, Some(b"key")))),
        ("cipher no uri", Box::new(|| Layers::new().with(NetaioStreamCipher::new(b"k").encrypt_uri(false)))),
        ("hmac+cipher", Box::new(|| Layers::netaio(Some(b"secret"), Some(b"key")))),
        ("aead", Box::new(move || Layers::aead(&key))),
        ("aead+hmac", Box::new(move || Layers::aead(&key).with(NetaioHmac::new(b"s")))),
    ];
    for (name, make) in stacks {
        let (server, addr) = start(ServerConfig { layers: make(), ..Default::default() }).await;
        let c = client(&addr, make()).await;
        check_echo(&c).await;
        // A client without the layers gets nowhere (AUTH_ERROR or nothing, never a handler).
        if name != "none" {
            let plain = client(&addr, Layers::new()).await;
            let e = plain
                .request(MessageType::REQUEST_URI, b"echo", b"hi", Duration::from_millis(500))
                .await
                .unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Remote | ErrorKind::Timeout), "{name}: {e}");
        }
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_inner_layers() {
    // Instance layers netaio-style; a per-handler inner layer with its own field names.
    let outer = || Layers::netaio(Some(b"outer"), Some(b"outer-key"));
    let inner = || {
        Layers::new()
            .with(NetaioStreamCipher::new(b"inner-key").iv_field("iv2").encrypt_uri(false))
            .with(NetaioHmac::new(b"inner").fields("hmac2", "nonce", "ts"))
    };
    let server = Server::new(ServerConfig { layers: outer(), ..Default::default() });
    server.route(
        Key::new(MessageType::REQUEST_URI, Some(b"inner")),
        inner(),
        false,
        handler(
            |m: Message, _c: Call| async move { Some(m.reply(MessageType::RESPOND_URI, m.content.clone())) },
        ),
    );
    let reached = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = reached.clone();
    server.route(
        Key::new(MessageType::REQUEST_URI, Some(b"guarded")),
        Layers::new().with(NetaioHmac::new(b"inner").fields("hmac2", "nonce", "ts")),
        false,
        handler(move |m: Message, _c: Call| {
            r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Some(m.reply(MessageType::RESPOND_URI, Bytes::new())) }
        }),
    );
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    let c = client(&addr, outer()).await;
    let m = Message::new(MessageType::REQUEST_URI, &b"inner"[..], &b"secret stuff"[..]);
    let r = c.request_message(m, &inner(), T).await.unwrap();
    assert_eq!(&r.content[..], b"secret stuff");
    assert!(r.auth.get_bytes("hmac2").is_some() && r.auth.get_bytes("iv2").is_some());
    // AEAD inside netaio's outer layers.
    let aead_inner = Layers::new().with(Aead::new(&[3; 32]).encrypt_uri(false));
    server.route(
        Key::new(MessageType::REQUEST_URI, Some(b"aead")),
        Layers::new().with(Aead::new(&[3; 32]).encrypt_uri(false)),
        false,
        handler(
            |m: Message, _c: Call| async move { Some(m.reply(MessageType::RESPOND_URI, m.content.clone())) },
        ),
    );
    let r = c
        .request_message(Message::new(MessageType::REQUEST_URI, &b"aead"[..], &b"x"[..]), &aead_inner, T)
        .await
        .unwrap();
    assert_eq!(&r.content[..], b"x");
    // A wrong inner secret: AUTH_ERROR at once, and the handler never runs (netaio's bug avoided).
    let wrong = Layers::new().with(NetaioHmac::new(b"wrong").fields("hmac2", "nonce", "ts"));
    let t0 = Instant::now();
    let e = c
        .request_message(Message::new(MessageType::REQUEST_URI, &b"guarded"[..], &b""[..]), &wrong, T)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
    let ok = Layers::new().with(NetaioHmac::new(b"inner").fields("hmac2", "nonce", "ts"));
    c.request_message(Message::new(MessageType::REQUEST_URI, &b"guarded"[..], &b""[..]), &ok, T)
        .await
        .unwrap();
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_cross() {
    let layers = || Layers::netaio(Some(b"s"), Some(b"k"));
    let (server, addr) =
        start(ServerConfig { concurrent_handlers: true, layers: layers(), ..Default::default() }).await;
    let c = client(&addr, layers()).await;
    let _ = &server;
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            // Later requests finish first: replies come back out of order, all on uri "slow".
            let mut content = ((200 - i) % 37).to_be_bytes().to_vec();
            content.extend_from_slice(&i.to_be_bytes());
            let r = c.request(MessageType::REQUEST_URI, b"slow", &content, T).await.unwrap();
            assert_eq!(&r.content[..], &content[..], "request {i} got another's reply");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_complete_at_once() {
    let (server, addr) = start(ServerConfig::default()).await;
    let c = client(&addr, Layers::new()).await;
    let t0 = Instant::now();
    let e = c.request(MessageType::REQUEST_URI, b"nothing-here", b"", T).await.unwrap_err();
    match &e {
        norman::Error::Remote { reply } => {
            assert_eq!(reply.message_type, MessageType::NOT_FOUND);
            assert_eq!(&reply.content[..], b"not found");
        }
        other => panic!("{other}"),
    }
    let e = c.request(MessageType::REQUEST_URI, b"forbidden", b"", T).await.unwrap_err();
    assert!(
        matches!(&e, norman::Error::Remote { reply } if reply.message_type == MessageType::NOT_PERMITTED),
        "{e}"
    );
    // Wrong secret: the server's AUTH_ERROR is plain (as netaio's); still completes at once.
    server.shutdown().await;
    let (server, addr) =
        start(ServerConfig { layers: Layers::netaio(Some(b"right"), None), ..Default::default() }).await;
    let bad = client(&addr, Layers::netaio(Some(b"wrong"), None)).await;
    let e = bad.request(MessageType::REQUEST_URI, b"echo", b"", T).await.unwrap_err();
    assert!(
        matches!(&e, norman::Error::Remote { reply } if reply.message_type == MessageType::AUTH_ERROR
        && &reply.content[..] == b"HMAC auth failed"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "errors did not wait for the deadline");
    // Without request ids (as a netaio requester) errors still complete: uri echo, single request.
    let netaio_like = Client::connect(
        &addr,
        ClientConfig {
            layers: Layers::netaio(Some(b"wrong"), None),
            request_ids: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = netaio_like.request(MessageType::REQUEST_URI, b"echo", b"", T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Remote);
    // A deadline passes with a Timeout.
    let good = client(&addr, Layers::netaio(Some(b"right"), None)).await;
    let e =
        good.request(MessageType::REQUEST_URI, b"never", b"", Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_fails_in_flight_then_reconnects() {
    let (server, addr) = start(ServerConfig::default()).await;
    let config = ClientConfig {
        reconnect: Some(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            attempts: None,
        }),
        ..Default::default()
    };
    let c = Client::connect(&addr, config).await.unwrap();
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        let t0 = Instant::now();
        let r = c2.request(MessageType::REQUEST_URI, b"never", b"", Duration::from_secs(30)).await;
        (r, t0.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await;
    let (r, took) = pending.await.unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Closed);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // While disconnected, sends fail at once.
    let e = c.request(MessageType::REQUEST_URI, b"echo", b"", T).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    // A new server on the same port: the client comes back.
    let server = Server::new(ServerConfig::default());
    echo_routes(&server);
    server.listen(&addr).await.unwrap();
    c.wait_connected(T).await.unwrap();
    let r = c.request(MessageType::REQUEST_URI, b"echo", b"back", T).await.unwrap();
    assert_eq!(&r.content[..], b"back");
    c.close().await;
    assert_eq!(
        c.request(MessageType::REQUEST_URI, b"echo", b"", T).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_and_broadcast() {
    let layers = || Layers::aead(&[5; 32]);
    let (server, addr) = start(ServerConfig { layers: layers(), ..Default::default() }).await;
    let sub = client(&addr, layers()).await;
    let sub2 = client(&addr, layers()).await;
    let publ = client(&addr, layers()).await;
    assert_eq!(sub.subscribe(b"news", T).await.unwrap().message_type, MessageType::CONFIRM_SUBSCRIBE);
    sub2.subscribe(b"news", T).await.unwrap();
    assert_eq!(server.subscribers(b"news"), 2);
    publ.publish(b"news", b"hello", T).await.unwrap();
    for s in [&sub, &sub2] {
        let n = s.recv_timeout(T).await.expect("notification");
        assert_eq!(
            (n.message_type, &n.uri[..], &n.content[..]),
            (MessageType::NOTIFY_URI, &b"news"[..], &b"hello"[..])
        );
    }
    // Handlers take notifications before the inbox.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    sub2.on(MessageType::NOTIFY_URI, Some(b"news"), move |m: Message, _c: Client| {
        let _ = tx.send(m.content.clone());
        async { None }
    });
    assert_eq!(sub.unsubscribe(b"news", T).await.unwrap().message_type, MessageType::CONFIRM_UNSUBSCRIBE);
    publ.publish(b"news", b"second", T).await.unwrap();
    assert_eq!(&tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap()[..], b"second");
    assert!(sub.recv_timeout(Duration::from_millis(200)).await.is_none(), "unsubscribed");
    assert_eq!(
        server.broadcast(Message::new(MessageType::NOTIFY_URI, &b"all"[..], &b"b"[..])).await.unwrap(),
        3
    );
    for s in [&sub, &publ] {
        assert_eq!(&s.recv_timeout(T).await.unwrap().uri[..], b"all");
    }
    drop(sub2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.subscribers(b"news"), 0, "subscriptions die with the connection");
    server.shutdown().await;
}

async fn read_reply(s: &mut TcpStream) -> Option<Message> {
    let mut head = [0u8; 9];
    if let Err(e) = s.read_exact(&mut head).await {
        eprintln!("read_reply: {e}");
        return None;
    }
    let h = norman::msg::Header::decode(&head).ok()?;
    let mut rest = vec![0u8; h.payload_len()];
    s.read_exact(&mut rest).await.ok()?;
    let mut frame = head.to_vec();
    frame.extend_from_slice(&rest);
    Message::decode(&Bytes::from(frame), &Default::default()).ok()
}

async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(T, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_limits() {
    let limits = norman::msg::Limits { max_body: 1024, ..Default::default() };
    let (server, addr) = start(ServerConfig {
        limits,
        max_connections: 3,
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Some(Duration::from_millis(600)),
        ..Default::default()
    })
    .await;
    // Bad checksum: ERROR "invalid message", the connection stays.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut m = Message::new(MessageType::REQUEST_URI, &b"echo"[..], &b"x"[..]);
    m.auth.set_bytes(norman::msg::REQUEST_ID_FIELD, &7u64.to_be_bytes());
    let mut frame = m.encode().unwrap();
    frame[5] ^= 0xff;
    s.write_all(&frame).await.unwrap();
    let r = read_reply(&mut s).await.unwrap();
    assert_eq!((r.message_type, &r.content[..]), (MessageType::ERROR, &b"invalid message"[..]));
    assert_eq!(r.auth.get_bytes(norman::msg::REQUEST_ID_FIELD), Some(&7u64.to_be_bytes()[..]));
    s.write_all(&Message::new(MessageType::REQUEST_URI, &b"echo"[..], &b"ok"[..]).encode().unwrap())
        .await
        .unwrap();
    assert_eq!(&read_reply(&mut s).await.unwrap().content[..], b"ok");
    // Oversize: refused from the header alone (the body is never sent), then closed.
    s.write_all(&[0, 0, 3, 0xff, 0xff, 0, 0, 0, 0]).await.unwrap();
    let r = read_reply(&mut s).await.unwrap();
    assert_eq!(&r.content[..], b"message too large");
    assert!(closed(&mut s).await);
    // Unassigned type 15: closed.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut frame = Message::new(MessageType::OK, &b""[..], &b""[..]).encode().unwrap();
    frame[0] = 15;
    s.write_all(&frame).await.unwrap();
    assert!(closed(&mut s).await);
    // Bad packify auth data: closed.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0, 0, 3, 0, 2, 0, 0, 0, 0, 0x54, 0x01, 0x01, 0, 0]).await.unwrap();
    assert!(closed(&mut s).await);
    // Handshake timeout: silent connections are closed.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    assert!(closed(&mut s).await);
    assert!(t0.elapsed() < Duration::from_secs(3));
    // A peer trickling a frame byte by byte is still held to the handshake deadline.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let frame = Message::new(MessageType::REQUEST_URI, &b"echo"[..], &b"slow"[..]).encode().unwrap();
    for b in &frame {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed(&mut s).await);
    assert!(t0.elapsed() < Duration::from_millis(1000), "{:?}", t0.elapsed());
    // Connection limit: a fourth connection is closed at once.
    let keep: Vec<Client> =
        futures_util::future::join_all((0..3).map(|_| client(&addr, Layers::new()))).await;
    for k in &keep {
        k.request(MessageType::REQUEST_URI, b"echo", b"", T).await.unwrap();
    }
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    assert!(closed(&mut extra).await);
    assert_eq!(server.stats().connections, 3);
    // Idle timeout: the clients are dropped after 600 ms of silence.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(server.stats().connections, 0);
    assert!(!keep[0].is_connected());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_one_way() {
    let server = Server::new(ServerConfig::default());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    server.on(MessageType::PUBLISH_URI, None, move |_m: Message, _c: Call| {
        c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async { None }
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    let c = client(&addr, Layers::new()).await;
    let n = 20_000;
    let content = vec![7u8; 100];
    for _ in 0..n {
        c.send(Message::new(MessageType::PUBLISH_URI, &b"p"[..], content.clone())).await.unwrap();
    }
    let t0 = Instant::now();
    while count.load(std::sync::atomic::Ordering::Relaxed) < n && t0.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), n, "nothing lost");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients() {
    let layers = || Layers::netaio(Some(b"s"), None);
    let (server, addr) = start(ServerConfig { layers: layers(), ..Default::default() }).await;
    let clients: Vec<Client> =
        futures_util::future::join_all((0..1000).map(|_| client(&addr, layers()))).await;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.clone();
            tokio::spawn(async move {
                for j in 0..5u32 {
                    let content = format!("{i}/{j}");
                    let r = c
                        .request(
                            MessageType::REQUEST_URI,
                            b"echo",
                            content.as_bytes(),
                            Duration::from_secs(30),
                        )
                        .await
                        .unwrap();
                    assert_eq!(&r.content[..], content.as_bytes());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // (A connection can sit in the listen backlog until its first request: count after them.)
    assert_eq!(server.stats().connections, 1000);
    drop(clients);
    let t0 = Instant::now();
    while server.stats().connections > 0 && t0.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats().connections, 0);
    server.shutdown().await;
}

/// A request writes its frame on the caller's thread when nothing is queued (`Outbox::send_now`).
/// Against a peer that reads late and through a small window, frames the socket takes only in
/// part, requests that give up mid-frame and one-way sends from other tasks must all arrive whole
/// and unmixed, each one-way message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_stay_whole_when_callers_write_them() {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap(); // a small window: writes stop part-way
    let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.listen(8).unwrap();
    socket.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(socket.into()).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client = Client::connect(&addr, ClientConfig::default()).await.unwrap();
    let (mut peer, _) = listener.accept().await.unwrap();

    fn content(i: usize) -> Vec<u8> {
        (0..60_000).map(|j| (i * 7 + j % 251) as u8).collect()
    }
    // 4 x 25 requests of 60 KB first: more than a socket's largest send buffer (tcp_wmem's 4 MiB),
    // so some frames go out only in part, then one-way messages between requests.
    const TASKS: usize = 4;
    const FIRST: usize = 25;
    const EACH: usize = 41;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            for k in 0..EACH {
                let i = t * EACH + k;
                let uri = format!("u{i}");
                if k < FIRST || k % 2 == 0 {
                    // Nobody answers: each gives up after 50 ms, often with its frame half out.
                    let r = client
                        .request(
                            MessageType::REQUEST_URI,
                            uri.as_bytes(),
                            &content(i),
                            Duration::from_millis(50),
                        )
                        .await;
                    assert!(r.is_err());
                } else {
                    let m = Message::new(MessageType::NOTIFY_URI, uri.into_bytes(), content(i));
                    client.send(m).await.unwrap();
                    sent += 1;
                }
            }
            sent
        }));
    }
    // The peer reads nothing while the requests go out (25 x 50 ms deadlines).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (mut requests, mut notifies) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    let started = Instant::now();
    loop {
        let all_done = tasks.iter().all(|t| t.is_finished());
        let wait = if all_done { Duration::from_millis(500) } else { T };
        let Ok(frame) = tokio::time::timeout(wait, read_reply(&mut peer)).await else { break };
        let m = frame.expect("every frame decodes (whole, checksum intact)");
        let uri = String::from_utf8(m.uri.to_vec()).unwrap();
        let i: usize = uri.strip_prefix('u').unwrap().parse().unwrap();
        assert_eq!(&m.content[..], &content(i)[..], "{uri} carries its own content");
        assert!(seen.insert(i), "{uri} arrived twice");
        match m.message_type {
            MessageType::REQUEST_URI => requests += 1,
            MessageType::NOTIFY_URI => notifies += 1,
            other => panic!("unexpected {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    assert_eq!(notifies, sent);
    assert_eq!(sent, TASKS * (EACH - FIRST) / 2);
    assert!(requests <= TASKS * EACH - sent);
    client.close().await;
}
