//! A subscriber that stops reading must not grow the server's memory: its writer queue is
//! bounded in bytes and, when full, the policy closes it (or waits, then closes it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use norman::msg::{Call, Client, ClientConfig, Message, MessageType, Server, ServerConfig, SlowConsumer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(5);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn broker(policy: SlowConsumer) -> (Server, String) {
    let server =
        Server::new(ServerConfig { queue_bytes: 64 * 1024, slow_consumer: policy, ..Default::default() });
    server.on(MessageType::SUBSCRIBE_URI, None, |m: Message, c: Call| async move {
        c.subscribe(&m.uri);
        Some(m.reply(MessageType::CONFIRM_SUBSCRIBE, Bytes::new()))
    });
    server.on(MessageType::PUBLISH_URI, None, |m: Message, c: Call| async move {
        c.server()?.notify(&m.uri, &m.content).await.ok()?;
        Some(m.reply(MessageType::OK, Bytes::new()))
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap().to_string();
    (server, addr)
}

/// Subscribes with a raw socket, reads the confirmation, and then never reads again.
async fn stalled_subscriber(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&Message::new(MessageType::SUBSCRIBE_URI, &b"t"[..], Bytes::new()).encode().unwrap())
        .await
        .unwrap();
    let mut b = [0u8; 14];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(b[0], MessageType::CONFIRM_SUBSCRIBE.0);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_dropped_and_memory_stays_flat() {
    let (server, addr) = broker(SlowConsumer::Disconnect).await;
    let _stalled = stalled_subscriber(&addr).await;
    let publisher = Client::connect(&addr, ClientConfig::default()).await.unwrap();
    let before = rss_kib();
    let content = vec![0x5au8; 16 * 1024];
    let mut max_queued = 0;
    // 2,000 x 16 KiB = 32 MiB of notifications for a subscriber that reads nothing.
    for _ in 0..2000 {
        publisher.publish(b"t", &content, T).await.unwrap();
        max_queued = max_queued.max(server.stats().queued_bytes);
    }
    let grown = rss_kib().saturating_sub(before);
    let stats = server.stats();
    assert_eq!(stats.dropped_slow, 1, "{stats:?}");
    assert!(max_queued <= 64 * 1024 + 16 * 1024, "queued {max_queued} bytes");
    assert!(grown < 16 * 1024, "resident memory grew by {grown} KiB");
    assert_eq!(server.subscribers(b"t"), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_policy_backpressures_then_drops() {
    let (server, addr) = broker(SlowConsumer::Wait(Duration::from_millis(300))).await;
    let _stalled = stalled_subscriber(&addr).await;
    let publisher = Client::connect(&addr, ClientConfig::default()).await.unwrap();
    let content = vec![1u8; 16 * 1024];
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..1000 {
        let t = Instant::now();
        publisher.publish(b"t", &content, T).await.unwrap();
        slowest = slowest.max(t.elapsed());
        assert!(server.stats().queued_bytes <= 80 * 1024);
    }
    // The publisher waited for the stalled subscriber (backpressure), then it was dropped.
    assert!(slowest >= Duration::from_millis(250), "{slowest:?}");
    assert_eq!(server.stats().dropped_slow, 1);
    assert!(t0.elapsed() < Duration::from_secs(10));
    server.shutdown().await;
}
