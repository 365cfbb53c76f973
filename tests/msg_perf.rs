//! Throughput figures (ignored by default; numbers, not pass/fail):
//! `cargo test --release --test msg_perf -- --ignored --nocapture`

use std::time::{Duration, Instant};

use bytes::Bytes;
use norman::msg::{Call, Client, ClientConfig, Layers, Message, MessageType, Server, ServerConfig};

async fn sequential(name: &str, layers: Layers, server_layers: Layers) {
    let server = Server::new(ServerConfig { layers: server_layers, ..Default::default() });
    server.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _c: Call| async move {
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    let c = Client::connect(&addr, ClientConfig { layers, ..Default::default() }).await.unwrap();
    let content = vec![0x41u8; 1024];
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) && lat.len() < 1_000_000 {
        let t = Instant::now();
        c.request(MessageType::REQUEST_URI, b"echo", &content, Duration::from_secs(5)).await.unwrap();
        lat.push(t.elapsed());
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "sequential 1 KiB {name}: {:.0} requests/s, p50 {:?}, p99 {:?}",
        lat.len() as f64 / secs,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    server.shutdown().await;
}

async fn thousand_clients_rss() {
    // Resident memory of this process (server and clients together: an upper bound for the
    // server) with 1,000 connected clients that each made one request.
    let before = rss_kib();
    let server =
        Server::new(ServerConfig { layers: Layers::netaio(Some(b"s"), Some(b"k")), ..Default::default() });
    server.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _c: Call| async move {
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let layers = Layers::netaio(Some(b"s"), Some(b"k"));
        let c = Client::connect(&addr, ClientConfig { layers, ..Default::default() }).await.unwrap();
        c.request(MessageType::REQUEST_URI, b"echo", &[0u8; 1024], Duration::from_secs(10)).await.unwrap();
        clients.push(c);
    }
    println!(
        "1,000 clients connected: process resident {} KiB ({} KiB more than before; server and clients)",
        rss_kib(),
        rss_kib().saturating_sub(before)
    );
    drop(clients);
    server.shutdown().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn figures() {
    sequential("plain", Layers::new(), Layers::new()).await;
    let n = || Layers::netaio(Some(b"secret"), Some(b"key"));
    sequential("netaio hmac+cipher", n(), n()).await;
    sequential("aead", Layers::aead(&[1; 32]), Layers::aead(&[1; 32])).await;

    let server = Server::new(ServerConfig::default());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    server.on(MessageType::PUBLISH_URI, None, move |_m: Message, _c: Call| {
        c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async { None }
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    let c = Client::connect(&addr, ClientConfig::default()).await.unwrap();
    let n = 500_000;
    let content = Bytes::from(vec![7u8; 100]);
    let t0 = Instant::now();
    for _ in 0..n {
        c.send(Message::new(MessageType::PUBLISH_URI, Bytes::from_static(b"p"), content.clone()))
            .await
            .unwrap();
    }
    while count.load(std::sync::atomic::Ordering::Relaxed) < n && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = count.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "pipelined one-way 100 B: {got} of {n} in {:?}: {:.0} messages/s",
        t0.elapsed(),
        got as f64 / t0.elapsed().as_secs_f64()
    );
    server.shutdown().await;
    thousand_clients_rss().await;
}
