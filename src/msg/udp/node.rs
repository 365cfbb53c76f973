//! The node: binding, sending, multicast, broadcast to peers, requests, closing.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use socket2::SockAddr;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::NodeConfig;
use super::recv::recv_loop;
use super::socket::{into_tokio, io_err, join, multicast_send_options, new_socket};
use super::{Datagram, Node, NodeInner, Waiter, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6};
use crate::error::{Error, Result};
use crate::msg::layer::Layers;
use crate::msg::router::{handler, Handler, Key, Router};
use crate::msg::udp::lock;
use crate::msg::wire::{Message, MessageType};
use crate::msg::REQUEST_ID_FIELD;

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

    /// The bound address.
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

    /// Registers a handler under any key, with inner layers, possibly one-shot.
    pub fn route(&self, key: Key, inner: Layers, once: bool, handler: Handler<Datagram>) {
        self.inner.router.add(key, inner, once, handler);
    }

    /// The handler for unmatched messages (`None`: NOT_FOUND, with the uri echoed).
    pub fn set_default(&self, handler: Option<Handler<Datagram>>) {
        self.inner.router.set_default(handler);
    }

    pub(super) fn max_datagram(&self) -> usize {
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

    /// Sends `msg` to the multicast group, sealed with `inner` layers inside the instance layers.
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

    /// [`Node::request`] for a built message, with `inner` layers.
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

    /// Whether [`Node::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.inner.stop.borrow()
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
