//! A client connection's tasks: the writer's installation, the reader and its supervisor
//! (reconnection), and the delivery of what arrives.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{connect_stream, Client, ClientInner, CloseOnDrop, Pending};

use crate::error::Error;
use crate::msg::tcp::conn::{raised, write_loop, FrameReader, Outbox, ReadError};
use crate::msg::tcp::lock;
use crate::msg::wire::{Message, MessageType};
use crate::msg::REQUEST_ID_FIELD;

/// Starts the writer of a new connection and publishes its outbox; returns the read half.
pub(super) fn install(inner: &Arc<ClientInner>, stream: TcpStream) -> (OwnedReadHalf, watch::Sender<bool>) {
    let (r, w) = stream.into_split();
    let (kill, kill_rx) = watch::channel(false);
    let (outbox, writer) = Outbox::new(inner.config.queue_bytes, w, kill_rx);
    tokio::spawn(write_loop(writer));
    *lock(&inner.outbox) = Some(outbox);
    let _ = inner.connected.send(true);
    (r, kill)
}

/// Runs the reader; on a lost connection fails the requests in flight and reconnects (if asked).
pub(super) async fn supervise(weak: Weak<ClientInner>, first: (OwnedReadHalf, watch::Sender<bool>)) {
    let mut conn = Some(first);
    let mut stop = match weak.upgrade() {
        Some(i) => i.stop.subscribe(),
        None => return,
    };
    while let Some((r, kill)) = conn.take() {
        tokio::select! {
            _ = client_read_loop(weak.clone(), r) => {}
            _ = raised(&mut stop) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let _ = inner.connected.send(false);
        let lost = format!("the connection to {} was lost", inner.addr);
        if inner.closed.load(Ordering::Acquire) {
            // Closing: let queued messages go out (the writer ends when the outbox is dropped).
            drop(kill);
            return;
        }
        let _ = kill.send(true);
        *lock(&inner.outbox) = None;
        Pending::fail_all(&inner.pending, &lost);
        let Some(backoff) = inner.config.reconnect.clone() else {
            inner.shut();
            return;
        };
        let (addr, timeout) = (inner.addr.clone(), inner.config.connect_timeout);
        drop(inner);
        let mut delay = backoff.initial;
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = raised(&mut stop) => return,
            }
            match connect_stream(&addr, timeout).await {
                Ok(s) => {
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.closed.load(Ordering::Acquire) {
                        return;
                    }
                    conn = Some(install(&inner, s));
                    break;
                }
                Err(e) => {
                    failures += 1;
                    log::debug!("msg: reconnecting to {addr}: {e}");
                    if backoff.attempts.is_some_and(|a| failures >= a) {
                        if let Some(inner) = weak.upgrade() {
                            inner.shut();
                        }
                        return;
                    }
                    delay = (delay * 2).min(backoff.max);
                }
            }
        }
    }
}

async fn client_read_loop(weak: Weak<ClientInner>, mut r: OwnedReadHalf) {
    let limits = match weak.upgrade() {
        Some(i) => i.config.limits,
        None => return,
    };
    let mut reader = FrameReader::new(limits);
    loop {
        let (header, payload) = match reader.next(&mut r, None).await {
            Ok(f) => f,
            Err(ReadError::Eof) => return,
            Err(ReadError::Timeout) => return,
            Err(ReadError::Fail(e)) => {
                log::debug!("msg: client connection closed: {e}");
                return;
            }
        };
        let Some(inner) = weak.upgrade() else { return };
        let msg = match Message::decode_parts(header, payload) {
            Ok(m) => m,
            // netaio's client drops a message with a bad checksum and carries on.
            Err(Error::ChecksumMismatch { .. }) => continue,
            Err(e) => {
                log::debug!("msg: client connection closed: {e}");
                return;
            }
        };
        client_receive(&inner, msg).await;
    }
}

fn request_id(msg: &Message) -> Option<u64> {
    msg.auth.get_bytes(REQUEST_ID_FIELD).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
}

async fn client_receive(inner: &Arc<ClientInner>, mut msg: Message) {
    // Handlers get a handle that does not keep the client open.
    let client = || Client { inner: inner.clone(), _guard: Arc::new(CloseOnDrop(Weak::new())) };
    if let Err(e) = inner.config.layers.open(&mut msg) {
        // An error reply the server could not seal (its AUTH_ERROR is plain, as netaio's): it may
        // only complete the request it names, or the single one in flight.
        let plain = msg.auth.iter().all(|(k, _)| k == REQUEST_ID_FIELD);
        if msg.message_type.is_error() && plain {
            let waiter = {
                let mut p = lock(&inner.pending);
                match request_id(&msg) {
                    Some(id) => p.take(id),
                    None if p.by_id.len() == 1 => {
                        let id = *p.by_id.keys().next().unwrap_or(&0);
                        p.take(id)
                    }
                    None => None,
                }
            };
            if let Some(w) = waiter {
                let _ = w.tx.send(Err(Error::Remote { reply: Box::new(msg) }));
                return;
            }
        }
        log::debug!("msg: client dropped a message: {e}");
        return;
    }
    let waiter = {
        let mut p = lock(&inner.pending);
        match request_id(&msg) {
            Some(id) => p.take(id),
            None => p.take_by_uri(&msg.uri, msg.message_type).or_else(|| {
                // netaio's servers answer errors with uri "ERROR" or "": with one request in
                // flight, that is its answer.
                if msg.message_type.is_error() && p.by_id.len() == 1 {
                    let id = *p.by_id.keys().next().unwrap_or(&0);
                    p.take(id)
                } else {
                    None
                }
            }),
        }
    };
    if let Some(w) = waiter {
        let result = match w.inner.open(&mut msg) {
            Err(e) => Err(e),
            Ok(()) if msg.message_type.is_error() => Err(Error::Remote { reply: Box::new(msg) }),
            Ok(()) => Ok(msg),
        };
        let _ = w.tx.send(result);
        return;
    }
    if request_id(&msg).is_some()
        && !msg.message_type.is_error()
        && msg.message_type != MessageType::NOTIFY_URI
    {
        // A late reply to a request that timed out.
        return;
    }
    if let Some(route) = inner.router.lookup(&msg, None) {
        if route.inner.open(&mut msg).is_ok() {
            let _ = (route.handler)(msg, client()).await;
        }
        return;
    }
    if let Some(h) = inner.router.default_handler() {
        let _ = h(msg, client()).await;
        return;
    }
    if inner.inbox_tx.try_send(msg).is_err() {
        log::warn!("msg: client inbox full; an unsolicited message was dropped");
    }
}
