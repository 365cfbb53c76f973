//! UDP node (WIRE.md §6): one message per datagram, handlers whose replies go back to the sender,
//! multicast with every option set explicitly (group, interface, TTL/hops, loop), and netaio's
//! peer management (advertise, discover, reply, time out, disconnect), plus broadcast to known
//! peers, requests with typed errors, and IPv6.
//!
//! Sockets: the node sends and receives unicast on the socket bound to `bind`. With multicast, a
//! second socket bound to `(group, port)` (SO_REUSEADDR, so several nodes on one host share it)
//! joins the group on the configured interface and receives the group's datagrams; replies still
//! leave from the unicast socket. A node bound to the unspecified address whose multicast port is
//! its own port uses its one socket for both, as netaio does.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::layer::Layers;
use super::packify::Value;
use super::router::{self, handler, Handler, Key, Outcome, Router};
use super::wire::{Limits, Message, MessageType};
use super::REQUEST_ID_FIELD;
use crate::error::{Error, Result};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The largest UDP payload over IPv4 (netaio's limit too).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest UDP payload over IPv6 (without jumbograms).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// Multicast settings, all applied explicitly to the sockets.
#[derive(Debug, Clone)]
pub struct MulticastConfig {
    /// The group (netaio's default: 224.0.0.1). IPv4 or IPv6, same family as `bind`.
    pub group: IpAddr,
    /// IPv4: the interface address for IP_MULTICAST_IF and the membership (tests pin
    /// 127.0.0.1). Ignored for IPv6.
    pub interface_v4: Ipv4Addr,
    /// IPv6: the interface index for IPV6_MULTICAST_IF and the membership (0: the kernel's).
    pub interface_v6: u32,
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (1: the local link only).
    pub ttl: u32,
    /// Whether this host's own sockets hear what it multicasts (netaio relies on it being on).
    pub loopback: bool,
    /// The port multicasts go to, and the group socket listens on (`None`: the node's own port,
    /// as netaio does).
    pub port: Option<u16>,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        MulticastConfig {
            group: IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
            interface_v4: Ipv4Addr::LOCALHOST,
            interface_v6: 0,
            ttl: 1,
            loopback: true,
            port: None,
        }
    }
}

/// Node settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub bind: SocketAddr,
    /// Instance (outer) layers.
    pub layers: Layers,
    pub limits: Limits,
    pub multicast: Option<MulticastConfig>,
    /// Events kept for [`Node::next_event`] at most (more are dropped, with a log line).
    pub events: usize,
}

impl NodeConfig {
    pub fn new(bind: SocketAddr) -> NodeConfig {
        NodeConfig { bind, layers: Layers::new(), limits: Limits::default(), multicast: None, events: 1024 }
    }
}

/// Peer management settings (netaio's `manage_peers_automatically`).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node's id and data, advertised as `packify((id, data))`.
    pub id: Bytes,
    pub data: Bytes,
    /// The uri of peer-management messages (netaio's default: "netaio").
    pub app_id: Bytes,
    /// Advertise this often (netaio: 20 s).
    pub every: Duration,
    /// A peer silent this long is gone (netaio: 60 s).
    pub timeout: Duration,
    /// Inner layers for the peer-management messages.
    pub layers: Layers,
}

impl PeerConfig {
    pub fn new(id: impl Into<Bytes>, data: impl Into<Bytes>) -> PeerConfig {
        PeerConfig {
            id: id.into(),
            data: data.into(),
            app_id: Bytes::from_static(b"netaio"),
            every: Duration::from_secs(20),
            timeout: Duration::from_secs(60),
            layers: Layers::new(),
        }
    }
}

/// A known peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: Bytes,
    pub data: Bytes,
    /// Addresses it was heard from, most recent first.
    pub addrs: Vec<SocketAddr>,
    pub last_rx: Instant,
}

/// Why a peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    Timeout,
    Disconnect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    PeerDiscovered(Peer),
    PeerGone { id: Bytes, reason: GoneReason },
}

/// The context of a handler: who sent the datagram.
#[derive(Clone)]
pub struct Datagram {
    pub from: SocketAddr,
    node: Weak<NodeInner>,
}

impl Datagram {
    pub fn node(&self) -> Option<Node> {
        self.node.upgrade().map(|inner| Node { inner })
    }
}

struct Waiter {
    tx: oneshot::Sender<Result<Message>>,
    uri: Bytes,
    to: SocketAddr,
    expect: [MessageType; 2],
    inner: Layers,
}

struct NodeInner {
    config: NodeConfig,
    socket: Arc<UdpSocket>,
    group_dest: Option<SocketAddr>,
    router: Router<Datagram>,
    peers: Mutex<HashMap<Bytes, Peer>>,
    managing: Mutex<Option<PeerConfig>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    events_tx: mpsc::Sender<NodeEvent>,
    events_rx: tokio::sync::Mutex<mpsc::Receiver<NodeEvent>>,
    stop: watch::Sender<bool>,
    local: SocketAddr,
}

/// A UDP message node. Cheap to clone; [`Node::close`] stops it.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

fn io_err(during: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(during)
}

fn new_socket(addr: &SocketAddr) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("creating a UDP socket"))?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(io_err("setting IPV6_V6ONLY"))?;
    }
    s.set_nonblocking(true).map_err(io_err("setting O_NONBLOCK"))?;
    Ok(s)
}

fn into_tokio(s: Socket) -> Result<UdpSocket> {
    UdpSocket::from_std(s.into()).map_err(io_err("registering a UDP socket"))
}

/// Sets the sending options of multicast on `s`.
fn multicast_send_options(s: &Socket, m: &MulticastConfig) -> Result<()> {
    match m.group {
        IpAddr::V4(_) => {
            s.set_multicast_if_v4(&m.interface_v4).map_err(io_err("setting IP_MULTICAST_IF"))?;
            s.set_multicast_ttl_v4(m.ttl).map_err(io_err("setting IP_MULTICAST_TTL"))?;
            s.set_multicast_loop_v4(m.loopback).map_err(io_err("setting IP_MULTICAST_LOOP"))?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(m.interface_v6).map_err(io_err("setting IPV6_MULTICAST_IF"))?;
            s.set_multicast_hops_v6(m.ttl).map_err(io_err("setting IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_loop_v6(m.loopback).map_err(io_err("setting IPV6_MULTICAST_LOOP"))?;
        }
    }
    Ok(())
}

fn join(s: &Socket, m: &MulticastConfig) -> Result<()> {
    match m.group {
        IpAddr::V4(g) => {
            s.join_multicast_v4(&g, &m.interface_v4).map_err(io_err("joining the multicast group"))
        }
        IpAddr::V6(g) => {
            s.join_multicast_v6(&g, m.interface_v6).map_err(io_err("joining the multicast group"))
        }
    }
}

impl Node {
    /// Binds the node (and its multicast socket) and starts receiving.
    pub async fn bind(config: NodeConfig) -> Result<Node> {
        if let Some(m) = &config.multicast {
            if m.group.is_ipv4() != config.bind.is_ipv4() || !m.group.is_multicast() {
                return Err(Error::InvalidArgument(format!(
                    "multicast group {} is not a multicast address of the family of {}",
                    m.group, config.bind
                )));
            }
        }
        let unicast = new_socket(&config.bind)?;
        unicast
            .bind(&SockAddr::from(config.bind))
            .map_err(|source| Error::Connect { addr: config.bind.to_string(), source })?;
        let local = unicast.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(config.bind);
        let mut group_socket = None;
        let mut group_dest = None;
        if let Some(m) = &config.multicast {
            multicast_send_options(&unicast, m)?;
            let port = m.port.unwrap_or(local.port());
            group_dest = Some(SocketAddr::new(m.group, port));
            if config.bind.ip().is_unspecified() && port == local.port() {
                join(&unicast, m)?;
            } else {
                let g = new_socket(&SocketAddr::new(m.group, port))?;
                g.set_reuse_address(true).map_err(io_err("setting SO_REUSEADDR"))?;
                let at = SocketAddr::new(m.group, port);
                g.bind(&SockAddr::from(at))
                    .map_err(|source| Error::Connect { addr: at.to_string(), source })?;
                join(&g, m)?;
                group_socket = Some(into_tokio(g)?);
            }
        }
        let socket = Arc::new(into_tokio(unicast)?);
        let (events_tx, events_rx) = mpsc::channel(config.events.max(1));
        let inner = Arc::new(NodeInner {
            config,
            socket: socket.clone(),
            group_dest,
            router: Router::default(),
            peers: Mutex::new(HashMap::new()),
            managing: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            stop: watch::channel(false).0,
            local,
        });
        tokio::spawn(recv_loop(Arc::downgrade(&inner), socket, inner.stop.subscribe()));
        if let Some(g) = group_socket {
            tokio::spawn(recv_loop(Arc::downgrade(&inner), Arc::new(g), inner.stop.subscribe()));
        }
        Ok(Node { inner })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Where [`Node::multicast`] sends (group and port), if multicast is configured.
    pub fn multicast_addr(&self) -> Option<SocketAddr> {
        self.inner.group_dest
    }

    /// Handles `message_type` (and `uri`) with an async closure whose return value is sent back
    /// to the sender.
    pub fn on<F, Fut>(&self, message_type: MessageType, uri: Option<&[u8]>, f: F)
    where
        F: Fn(Message, Datagram) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Message>> + Send + 'static,
    {
        self.inner.router.add(Key::new(message_type, uri), Layers::new(), false, handler(f));
    }

    pub fn route(&self, key: Key, inner: Layers, once: bool, handler: Handler<Datagram>) {
        self.inner.router.add(key, inner, once, handler);
    }

    pub fn set_default(&self, handler: Option<Handler<Datagram>>) {
        self.inner.router.set_default(handler);
    }

    fn max_datagram(&self) -> usize {
        if self.inner.local.is_ipv4() {
            MAX_DATAGRAM_V4
        } else {
            MAX_DATAGRAM_V6
        }
    }

    fn seal(&self, mut msg: Message, inner: &Layers) -> Result<Vec<u8>> {
        inner.seal(&mut msg)?;
        self.inner.config.layers.seal(&mut msg)?;
        let bytes = msg.encode()?;
        if bytes.len() > self.max_datagram() {
            return Err(Error::Oversize { limit: self.max_datagram() as u64 });
        }
        Ok(bytes)
    }

    async fn send_raw(&self, bytes: &[u8], to: SocketAddr) -> Result<()> {
        self.inner.socket.send_to(bytes, to).await.map_err(io_err("sending a datagram"))?;
        Ok(())
    }

    /// Sends `msg` to `to`, sealed with the instance layers.
    pub async fn send_to(&self, msg: Message, to: SocketAddr) -> Result<()> {
        self.send_to_with(msg, to, &Layers::new()).await
    }

    /// Sends `msg` to `to`, sealed with `inner`, then the instance layers.
    pub async fn send_to_with(&self, msg: Message, to: SocketAddr, inner: &Layers) -> Result<()> {
        let bytes = self.seal(msg, inner)?;
        self.send_raw(&bytes, to).await
    }

    /// Sends `msg` to the multicast group.
    pub async fn multicast(&self, msg: Message) -> Result<()> {
        self.multicast_with(msg, &Layers::new()).await
    }

    pub async fn multicast_with(&self, msg: Message, inner: &Layers) -> Result<()> {
        let to = self
            .inner
            .group_dest
            .ok_or_else(|| Error::InvalidConfig("the node has no multicast group".into()))?;
        self.send_to_with(msg, to, inner).await
    }

    /// Sends `msg` to every known peer (its most recent address), sealed once unless a layer asks
    /// for per-recipient sealing; returns how many were sent to.
    pub async fn broadcast(&self, msg: Message) -> Result<usize> {
        let addrs: Vec<SocketAddr> =
            lock(&self.inner.peers).values().filter_map(|p| p.addrs.first().copied()).collect();
        let once = if self.inner.config.layers.per_recipient() {
            None
        } else {
            Some(self.seal(msg.clone(), &Layers::new())?)
        };
        let mut sent = 0;
        for to in addrs {
            let r = match &once {
                Some(b) => self.send_raw(b, to).await,
                None => {
                    let b = self.seal(msg.clone(), &Layers::new())?;
                    self.send_raw(&b, to).await
                }
            };
            match r {
                Ok(()) => sent += 1,
                Err(e) => log::debug!("msg: broadcast to {to}: {e}"),
            }
        }
        Ok(sent)
    }

    /// Sends a request to `to` and waits up to `deadline` for the reply (matched by request id,
    /// else by uri and the exact address, as netaio does). Error replies are [`Error::Remote`].
    pub async fn request(
        &self,
        message_type: MessageType,
        uri: &[u8],
        content: &[u8],
        to: SocketAddr,
        deadline: Duration,
    ) -> Result<Message> {
        let msg = Message::new(message_type, Bytes::copy_from_slice(uri), Bytes::copy_from_slice(content));
        self.request_message(msg, to, &Layers::new(), deadline).await
    }

    pub async fn request_message(
        &self,
        mut msg: Message,
        to: SocketAddr,
        inner: &Layers,
        deadline: Duration,
    ) -> Result<Message> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        msg.auth.set_bytes(REQUEST_ID_FIELD, &id.to_be_bytes());
        let (tx, rx) = oneshot::channel();
        let expect = match msg.message_type {
            MessageType::REQUEST_URI => [MessageType::RESPOND_URI, MessageType::OK],
            MessageType::SUBSCRIBE_URI => [MessageType::CONFIRM_SUBSCRIBE, MessageType::OK],
            MessageType::UNSUBSCRIBE_URI => [MessageType::CONFIRM_UNSUBSCRIBE, MessageType::OK],
            _ => [MessageType::OK, MessageType::RESPOND_URI],
        };
        lock(&self.inner.pending)
            .insert(id, Waiter { tx, uri: msg.uri.clone(), to, expect, inner: inner.clone() });
        let result = async {
            self.send_to_with(msg, to, inner).await?;
            match tokio::time::timeout(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(Error::Closed("the node was closed".into())),
                Err(_) => {
                    Err(Error::Timeout { during: "waiting for a reply", after_ms: deadline.as_millis() })
                }
            }
        }
        .await;
        lock(&self.inner.pending).remove(&id);
        result
    }

    /// Known peers.
    pub fn peers(&self) -> Vec<Peer> {
        lock(&self.inner.peers).values().cloned().collect()
    }

    /// The next peer event (`None` once the node is closed).
    pub async fn next_event(&self) -> Option<NodeEvent> {
        let mut rx = self.inner.events_rx.lock().await;
        let mut stop = self.inner.stop.subscribe();
        tokio::select! {
            e = rx.recv() => e,
            _ = stop.wait_for(|s| *s) => None,
        }
    }

    /// Starts netaio's peer management: handlers for ADVERTISE_PEER, PEER_DISCOVERED and
    /// DISCONNECT on `app_id`, and a task that drops silent peers and multicasts an
    /// advertisement every `every` (needs a multicast group; see [`Node::advertise_to`]).
    pub fn manage_peers(&self, config: PeerConfig) {
        let app = config.app_id.to_vec();
        for t in [MessageType::ADVERTISE_PEER, MessageType::PEER_DISCOVERED, MessageType::DISCONNECT] {
            self.inner.router.add(
                Key::new(t, Some(&app)),
                config.layers.clone(),
                false,
                handler(peer_message),
            );
        }
        *lock(&self.inner.managing) = Some(config.clone());
        let weak = Arc::downgrade(&self.inner);
        let mut stop = self.inner.stop.subscribe();
        tokio::spawn(async move {
            let tick = (config.timeout / 4)
                .clamp(Duration::from_millis(20), config.every.max(Duration::from_millis(20)));
            let mut next_advert = Instant::now();
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let node = Node { inner };
                    node.expire(config.timeout);
                    if Instant::now() >= next_advert && node.inner.group_dest.is_some() {
                        if let Err(e) = node
                            .multicast_with(
                                node.advertisement(&config, MessageType::ADVERTISE_PEER),
                                &config.layers,
                            )
                            .await
                        {
                            log::debug!("msg: advertising: {e}");
                        }
                        next_advert = Instant::now() + config.every;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }

    fn advertisement(&self, config: &PeerConfig, t: MessageType) -> Message {
        let content =
            Value::Tuple(vec![Value::Bytes(config.id.to_vec()), Value::Bytes(config.data.to_vec())]).pack();
        Message::new(t, config.app_id.clone(), content)
    }

    /// Sends this node's advertisement to one address (a peer known in advance, or a network
    /// without multicast).
    pub async fn advertise_to(&self, to: SocketAddr) -> Result<()> {
        let config = lock(&self.inner.managing)
            .clone()
            .ok_or_else(|| Error::InvalidConfig("peer management is not on".into()))?;
        self.send_to_with(self.advertisement(&config, MessageType::ADVERTISE_PEER), to, &config.layers).await
    }

    fn expire(&self, timeout: Duration) {
        let gone: Vec<Bytes> = {
            let mut peers = lock(&self.inner.peers);
            let gone: Vec<Bytes> = peers
                .iter()
                .filter(|(_, p)| p.last_rx.elapsed() > timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &gone {
                peers.remove(id);
            }
            gone
        };
        for id in gone {
            self.forget(&id, GoneReason::Timeout);
        }
    }

    fn forget(&self, id: &Bytes, reason: GoneReason) {
        self.event(NodeEvent::PeerGone { id: id.clone(), reason });
    }

    fn event(&self, e: NodeEvent) {
        if self.inner.events_tx.try_send(e).is_err() {
            log::warn!("msg: node event queue full; an event was dropped");
        }
    }

    /// Adds or refreshes a peer; true when it is new.
    fn add_or_update(&self, id: Bytes, data: Bytes, from: SocketAddr) -> bool {
        let mut peers = lock(&self.inner.peers);
        let (new, snapshot) = match peers.get_mut(&id) {
            Some(p) => {
                p.data = data;
                p.addrs.retain(|a| *a != from);
                p.addrs.insert(0, from);
                p.addrs.truncate(8);
                p.last_rx = Instant::now();
                (false, None)
            }
            None => {
                let p = Peer { id: id.clone(), data, addrs: vec![from], last_rx: Instant::now() };
                peers.insert(id.clone(), p.clone());
                (true, Some(p))
            }
        };
        drop(peers);
        if let Some(p) = snapshot {
            self.event(NodeEvent::PeerDiscovered(p));
        }
        new
    }

    /// Stops the node; with peer management, multicasts DISCONNECT first (as netaio does).
    pub async fn close(&self) {
        let managing = lock(&self.inner.managing).take();
        if let Some(config) = managing {
            if self.inner.group_dest.is_some() {
                let _ = self
                    .multicast_with(self.advertisement(&config, MessageType::DISCONNECT), &config.layers)
                    .await;
            }
        }
        let _ = self.inner.stop.send(true);
        for (_, w) in lock(&self.inner.pending).drain() {
            let _ = w.tx.send(Err(Error::Closed("the node was closed".into())));
        }
    }
}

/// Handler of ADVERTISE_PEER, PEER_DISCOVERED and DISCONNECT.
async fn peer_message(msg: Message, d: Datagram) -> Option<Message> {
    let node = d.node()?;
    let config = lock(&node.inner.managing).clone()?;
    let (id, data) = match Value::unpack(&msg.content) {
        Ok(Value::Tuple(v) | Value::List(v)) if v.len() == 2 => match (&v[0], &v[1]) {
            (Value::Bytes(id), Value::Bytes(data)) => {
                (Bytes::copy_from_slice(id), Bytes::copy_from_slice(data))
            }
            _ => return None,
        },
        _ => return None,
    };
    if id == config.id {
        return None;
    }
    match msg.message_type {
        MessageType::ADVERTISE_PEER => {
            node.add_or_update(id, data, d.from);
            // netaio answers every advertisement with its own, unicast, to the advertiser.
            Some(node.advertisement(&config, MessageType::PEER_DISCOVERED))
        }
        MessageType::PEER_DISCOVERED => {
            node.add_or_update(id, data, d.from);
            None
        }
        _ => {
            if lock(&node.inner.peers).remove(&id).is_some() {
                node.forget(&id, GoneReason::Disconnect);
            }
            None
        }
    }
}

async fn recv_loop(weak: Weak<NodeInner>, socket: Arc<UdpSocket>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let got = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (n, from) = match got {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable from an earlier send, and the like: keep going.
                log::debug!("msg: UDP receive: {e}");
                continue;
            }
        };
        let Some(inner) = weak.upgrade() else { return };
        if from == inner.local {
            continue; // our own multicast, looped back
        }
        let frame = Bytes::copy_from_slice(&buf[..n]);
        let msg = match Message::decode(&frame, &inner.config.limits) {
            Ok(m) => m,
            Err(Error::ChecksumMismatch { .. }) => {
                // netaio's node answers a bad checksum with ERROR "invalid message", in the clear.
                if let Ok(b) = Message::error("invalid message", &b"ERROR"[..]).encode() {
                    let _ = socket.send_to(&b, from).await;
                }
                continue;
            }
            Err(e) => {
                log::debug!("msg: dropped a datagram from {from}: {e}");
                continue;
            }
        };
        let node = Node { inner };
        receive(&node, msg, from).await;
    }
}

fn request_id(msg: &Message) -> Option<u64> {
    msg.auth.get_bytes(REQUEST_ID_FIELD).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
}

/// The reply to one of our requests that `msg` (from `from`) is, if any.
fn take_waiter(inner: &NodeInner, msg: &Message, from: SocketAddr) -> Option<Waiter> {
    let mut p = lock(&inner.pending);
    if p.is_empty() {
        return None;
    }
    let id = match request_id(msg) {
        Some(id) => p.get(&id).filter(|w| w.to == from).map(|_| id),
        None => p
            .iter()
            .filter(|(_, w)| w.to == from && w.uri == msg.uri)
            .filter(|(_, w)| msg.message_type.is_error() || w.expect.contains(&msg.message_type))
            .map(|(id, _)| *id)
            .min()
            .or_else(|| {
                // netaio answers errors with uri "ERROR": with one request to that address in
                // flight, that is its answer.
                let to_from: Vec<u64> = p.iter().filter(|(_, w)| w.to == from).map(|(id, _)| *id).collect();
                (msg.message_type.is_error() && to_from.len() == 1).then(|| to_from[0])
            }),
    };
    id.and_then(|id| p.remove(&id))
}

async fn receive(node: &Node, msg: Message, from: SocketAddr) {
    let inner = &node.inner;
    let plain_error = msg.message_type.is_error() && msg.auth.iter().all(|(k, _)| k == REQUEST_ID_FIELD);
    let copy = if plain_error { Some(msg.clone()) } else { None };
    let outcome = match router::open_outer(&inner.config.layers, msg, Some(from)) {
        Ok(mut msg) => {
            if msg.message_type.is_answer() {
                if let Some(w) = take_waiter(inner, &msg, from) {
                    let r = match w.inner.open(&mut msg) {
                        Err(e) => Err(e),
                        Ok(()) if msg.message_type.is_error() => Err(Error::Remote { reply: Box::new(msg) }),
                        Ok(()) => Ok(msg),
                    };
                    let _ = w.tx.send(r);
                    return;
                }
            }
            let d = Datagram { from, node: Arc::downgrade(inner) };
            router::dispatch_opened(&inner.router, &inner.config.layers, msg, Some(from), d).await
        }
        Err(outcome) => {
            // An error the peer could not seal (netaio's AUTH_ERROR is plain).
            if let Some(m) = copy {
                if let Some(w) = take_waiter(inner, &m, from) {
                    let _ = w.tx.send(Err(Error::Remote { reply: Box::new(m) }));
                    return;
                }
            }
            outcome
        }
    };
    if let Outcome::Reply(reply) = outcome {
        match reply.encode() {
            Ok(b) if b.len() <= node.max_datagram() => {
                if let Err(e) = inner.socket.send_to(&b, from).await {
                    log::debug!("msg: reply to {from}: {e}");
                }
            }
            Ok(_) => log::warn!("msg: reply to {from} larger than a datagram; not sent"),
            Err(e) => log::warn!("msg: reply to {from}: {e}"),
        }
    }
}
