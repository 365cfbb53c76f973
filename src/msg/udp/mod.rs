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

mod config;
mod node;
mod peers;
mod recv;
mod socket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Result;
use crate::msg::layer::Layers;
use crate::msg::router::Router;
use crate::msg::wire::{Message, MessageType};

pub use config::{MulticastConfig, NodeConfig, PeerConfig};
pub use peers::{GoneReason, NodeEvent, Peer};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The largest UDP payload over IPv4 (netaio's limit too).
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest UDP payload over IPv6 (without jumbograms).
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// The context of a handler: who sent the datagram.
#[derive(Clone)]
pub struct Datagram {
    /// The sender's address.
    pub from: SocketAddr,
    node: Weak<NodeInner>,
}

impl Datagram {
    /// The node that received the datagram (`None` once it is dropped).
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
