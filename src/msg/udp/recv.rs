//! The node's receiver: each datagram to the reply it awaits, a handler, or the default.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{Datagram, Node, NodeInner, Waiter};
use crate::error::Error;
use crate::msg::router::{self, Outcome};
use crate::msg::udp::lock;
use crate::msg::wire::Message;
use crate::msg::REQUEST_ID_FIELD;

pub(super) async fn recv_loop(
    weak: Weak<NodeInner>,
    socket: Arc<UdpSocket>,
    mut stop: watch::Receiver<bool>,
) {
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

pub(super) fn request_id(msg: &Message) -> Option<u64> {
    msg.auth.get_bytes(REQUEST_ID_FIELD).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
}

/// The reply to one of our requests that `msg` (from `from`) is, if any.
pub(super) fn take_waiter(inner: &NodeInner, msg: &Message, from: SocketAddr) -> Option<Waiter> {
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

pub(super) async fn receive(node: &Node, msg: Message, from: SocketAddr) {
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
