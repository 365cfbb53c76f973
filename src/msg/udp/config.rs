//! The node's settings: addresses, layers and limits, multicast, peer management.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use crate::msg::layer::Layers;
use crate::msg::wire::Limits;

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
    /// Address the socket binds.
    pub bind: SocketAddr,
    /// Instance (outer) layers.
    pub layers: Layers,
    /// Size limits of received messages.
    pub limits: Limits,
    /// Multicast group to join and send to (`None`: unicast only).
    pub multicast: Option<MulticastConfig>,
    /// Events kept for [`Node::next_event`](super::Node::next_event) at most (more are dropped, with a log line).
    pub events: usize,
}

impl NodeConfig {
    /// A node bound to `bind`, no layers, default limits, no multicast.
    pub fn new(bind: SocketAddr) -> NodeConfig {
        NodeConfig { bind, layers: Layers::new(), limits: Limits::default(), multicast: None, events: 1024 }
    }
}

/// Peer management settings (netaio's `manage_peers_automatically`).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node's id and data, advertised as `packify((id, data))`.
    pub id: Bytes,
    /// This node's advertised data.
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
    /// Peer management advertising `id` and `data`, with netaio's defaults.
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
