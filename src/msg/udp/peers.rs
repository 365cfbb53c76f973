//! netaio's peer management: advertisements, discovery, time-outs and disconnects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::config::PeerConfig;
use super::{Datagram, Node};
use crate::error::{Error, Result};
use crate::msg::packify::Value;
use crate::msg::router::{handler, Key};
use crate::msg::udp::lock;
use crate::msg::wire::{Message, MessageType};

/// A known peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's id.
    pub id: Bytes,
    /// The data it advertises.
    pub data: Bytes,
    /// Addresses it was heard from, most recent first.
    pub addrs: Vec<SocketAddr>,
    /// When it was last heard from.
    pub last_rx: Instant,
}

/// Why a peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// Silent longer than the peer timeout.
    Timeout,
    /// It said it is leaving.
    Disconnect,
}

/// What peer management reports (see [`Node::next_event`](super::Node::next_event)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A new peer was heard from.
    PeerDiscovered(Peer),
    /// A peer is gone.
    PeerGone {
        /// The peer's id.
        id: Bytes,
        /// Why.
        reason: GoneReason,
    },
}

impl Node {
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

    pub(super) fn advertisement(&self, config: &PeerConfig, t: MessageType) -> Message {
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
}

/// Handler of ADVERTISE_PEER, PEER_DISCOVERED and DISCONNECT.
pub(super) async fn peer_message(msg: Message, d: Datagram) -> Option<Message> {
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
