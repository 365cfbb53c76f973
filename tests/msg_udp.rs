//! UDP nodes, ours against ours on loopback: multicast with IP_MULTICAST_IF and membership pinned
//! to 127.0.0.1 (never a real interface), peer discovery, timeout and disconnect, echo requests
//! with layers, broadcast to peers, errors, IPv6.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use norman::msg::{
    Datagram, GoneReason, Layers, Message, MessageType, MulticastConfig, Node, NodeConfig, NodeEvent,
    PeerConfig,
};
use norman::ErrorKind;

const T: Duration = Duration::from_secs(5);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 77);

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn loopback_multicast(port: u16) -> MulticastConfig {
    MulticastConfig {
        group: IpAddr::V4(GROUP),
        interface_v4: Ipv4Addr::LOCALHOST,
        ttl: 1,
        loopback: true,
        port: Some(port),
        ..Default::default()
    }
}

async fn node(layers: Layers, mport: Option<u16>) -> Node {
    let mut config = NodeConfig::new("127.0.0.1:0".parse().unwrap());
    config.layers = layers;
    config.multicast = mport.map(loopback_multicast);
    let n = Node::bind(config).await.unwrap();
    n.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _d: Datagram| async move {
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    n
}

fn peers(id: &str, every_ms: u64, timeout_ms: u64) -> PeerConfig {
    let mut p = PeerConfig::new(Bytes::copy_from_slice(id.as_bytes()), Bytes::from_static(b"data"));
    p.every = Duration::from_millis(every_ms);
    p.timeout = Duration::from_millis(timeout_ms);
    p
}

async fn expect_event(n: &Node) -> NodeEvent {
    tokio::time::timeout(T, n.next_event()).await.expect("event in time").expect("node open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_echo_broadcast_and_goodbye() {
    for layers in [Layers::new(), Layers::netaio(Some(b"s"), Some(b"k")), Layers::aead(&[4; 32])] {
        let mport = free_udp_port();
        let a = node(layers.clone(), Some(mport)).await;
        let b = node(layers.clone(), Some(mport)).await;
        a.manage_peers(peers("a", 100, 2000));
        b.manage_peers(peers("b", 100, 2000));
        let NodeEvent::PeerDiscovered(pb) = expect_event(&a).await else { panic!() };
        assert_eq!((&pb.id[..], pb.addrs[0]), (&b"b"[..], b.local_addr()));
        let NodeEvent::PeerDiscovered(pa) = expect_event(&b).await else { panic!() };
        assert_eq!((&pa.id[..], pa.addrs[0]), (&b"a"[..], a.local_addr()));
        // Echo both ways.
        let r = b.request(MessageType::REQUEST_URI, b"echo", b"ping", a.local_addr(), T).await.unwrap();
        assert_eq!(&r.content[..], b"ping");
        let r =
            a.request(MessageType::REQUEST_URI, b"echo", &[0u8; 30_000], b.local_addr(), T).await.unwrap();
        assert_eq!(r.content.len(), 30_000);
        // Unknown uri: NOT_FOUND at once.
        let e = a.request(MessageType::REQUEST_URI, b"nope", b"", b.local_addr(), T).await.unwrap_err();
        assert!(
            matches!(&e, norman::Error::Remote { reply } if reply.message_type == MessageType::NOT_FOUND),
            "{e}"
        );
        // Broadcast to known peers.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        a.on(MessageType::NOTIFY_URI, Some(b"news"), move |m: Message, d: Datagram| {
            let _ = tx.send((m.content.clone(), d.from));
            async { None }
        });
        assert_eq!(
            b.broadcast(Message::new(MessageType::NOTIFY_URI, &b"news"[..], &b"hi"[..])).await.unwrap(),
            1
        );
        let (content, from) = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        assert_eq!((&content[..], from), (&b"hi"[..], b.local_addr()));
        // Goodbye: DISCONNECT.
        a.close().await;
        assert_eq!(
            expect_event(&b).await,
            NodeEvent::PeerGone { id: Bytes::from_static(b"a"), reason: GoneReason::Disconnect }
        );
        assert!(b.peers().is_empty());
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_and_wrong_layers_are_ignored() {
    let mport = free_udp_port();
    let a = node(Layers::netaio(Some(b"s"), None), Some(mport)).await;
    a.manage_peers(peers("a", 50, 400));
    // A node with another secret is never learned.
    let stranger = node(Layers::netaio(Some(b"other"), None), Some(mport)).await;
    stranger.manage_peers(peers("x", 50, 400));
    let c = node(Layers::netaio(Some(b"s"), None), Some(mport)).await;
    c.manage_peers(peers("c", 50, 400));
    let NodeEvent::PeerDiscovered(p) = expect_event(&a).await else { panic!() };
    assert_eq!(&p.id[..], b"c");
    // c vanishes without a DISCONNECT (dropped): a times it out.
    drop(c);
    assert_eq!(
        expect_event(&a).await,
        NodeEvent::PeerGone { id: Bytes::from_static(b"c"), reason: GoneReason::Timeout }
    );
    assert!(a.peers().iter().all(|p| &p.id[..] != b"x"));
    // The stranger's requests get AUTH_ERROR at once.
    let e = stranger.request(MessageType::REQUEST_URI, b"echo", b"", a.local_addr(), T).await.unwrap_err();
    assert!(
        matches!(&e, norman::Error::Remote { reply } if reply.message_type == MessageType::AUTH_ERROR),
        "{e}"
    );
    a.close().await;
    stranger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams() {
    let a = node(Layers::new(), None).await;
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut frame = Message::new(MessageType::REQUEST_URI, &b"echo"[..], &b"x"[..]).encode().unwrap();
    frame[6] ^= 1;
    raw.send_to(&frame, a.local_addr()).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(T, raw.recv_from(&mut buf)).await.unwrap().unwrap();
    let reply = Message::decode(&Bytes::copy_from_slice(&buf[..n]), &Default::default()).unwrap();
    assert_eq!((reply.message_type, &reply.content[..]), (MessageType::ERROR, &b"invalid message"[..]));
    // Garbage is dropped; the node keeps answering; trailing bytes are ignored.
    raw.send_to(&[0xff; 40], a.local_addr()).await.unwrap();
    raw.send_to(&[], a.local_addr()).await.unwrap();
    let mut good = Message::new(MessageType::REQUEST_URI, &b"echo"[..], &b"y"[..]).encode().unwrap();
    good.extend_from_slice(b"trailing");
    raw.send_to(&good, a.local_addr()).await.unwrap();
    let (n, _) = tokio::time::timeout(T, raw.recv_from(&mut buf)).await.unwrap().unwrap();
    let reply = Message::decode(&Bytes::copy_from_slice(&buf[..n]), &Default::default()).unwrap();
    assert_eq!(&reply.content[..], b"y");
    // Too large for a datagram: refused before sending.
    let e = a
        .send_to(Message::new(MessageType::OK, &b""[..], vec![0u8; 65_500]), a.local_addr())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Oversize);
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_unicast_and_direct_advertisement() {
    let bind: SocketAddr = "[::1]:0".parse().unwrap();
    let Ok(a) = Node::bind(NodeConfig { layers: Layers::aead(&[6; 32]), ..NodeConfig::new(bind) }).await
    else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let b = Node::bind(NodeConfig { layers: Layers::aead(&[6; 32]), ..NodeConfig::new(bind) }).await.unwrap();
    a.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _d: Datagram| async move {
        Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
    });
    let r = b.request(MessageType::REQUEST_URI, b"echo", b"v6", a.local_addr(), T).await.unwrap();
    assert_eq!(&r.content[..], b"v6");
    a.manage_peers(peers("a6", 1000, 5000));
    b.manage_peers(peers("b6", 1000, 5000));
    b.advertise_to(a.local_addr()).await.unwrap();
    let NodeEvent::PeerDiscovered(p) = expect_event(&a).await else { panic!() };
    assert_eq!((&p.id[..], p.addrs[0]), (&b"b6"[..], b.local_addr()));
    let NodeEvent::PeerDiscovered(p) = expect_event(&b).await else { panic!() };
    assert_eq!(&p.id[..], b"a6");
    // A multicast group of the other family is refused.
    let mut bad = NodeConfig::new(bind);
    bad.multicast = Some(MulticastConfig::default());
    assert_eq!(Node::bind(bad).await.err().unwrap().kind(), ErrorKind::InvalidArgument);
    a.close().await;
    b.close().await;
}
