//! A server's tasks: accepting connections and reading each one's messages.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{task_guard, Call, Conn, ServerInner};

use crate::error::{Error, Result};
use crate::msg::router::{self, Outcome};
use crate::msg::tcp::conn::{encode, raised, write_loop, FrameReader, Outbox, ReadError};
use crate::msg::tcp::lock;
use crate::msg::wire::Message;
use crate::msg::REQUEST_ID_FIELD;

pub(super) async fn accept_loop(inner: Arc<ServerInner>, listener: TcpListener) {
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = raised(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                log::warn!("msg: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = inner.slots.clone().try_acquire_owned() else {
            log::warn!("msg: refusing {peer}: {} connections already", inner.config.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (kill, kill_rx) = watch::channel(false);
        let (outbox, writer) = Outbox::new(inner.config.queue_bytes, w, kill_rx);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let conn =
            Arc::new(Conn { id, peer, outbox: outbox.clone(), kill, subs: Mutex::new(HashSet::new()) });
        lock(&inner.conns).insert(id, conn.clone());
        let g = task_guard(&inner);
        tokio::spawn(async move {
            let _g = g;
            write_loop(writer).await
        });
        let g = task_guard(&inner);
        let inner2 = inner.clone();
        tokio::spawn(async move {
            let _g = g;
            let _slot = slot;
            read_loop(inner2.clone(), conn.clone(), r).await;
            if *inner2.stop.borrow() {
                // The server is stopping: its shutdown flushes and kills every connection it
                // finds, this one included (forgotten here, a reply held by the application would
                // keep its writer, and the peer's connection, open).
                return;
            }
            // Forget the connection; the writer ends once the last reply is out.
            lock(&inner2.conns).remove(&conn.id);
            let uris: Vec<Bytes> = lock(&conn.subs).drain().collect();
            let mut subs = lock(&inner2.subs);
            for uri in uris {
                if let Some(set) = subs.get_mut(&uri) {
                    set.remove(&conn.id);
                    if set.is_empty() {
                        subs.remove(&uri);
                    }
                }
            }
        });
    }
}

async fn read_loop(inner: Arc<ServerInner>, conn: Arc<Conn>, mut r: OwnedReadHalf) {
    let config = &inner.config;
    let mut reader = FrameReader::new(config.limits);
    let mut stop = inner.stop.subscribe();
    let mut kill = conn.kill.subscribe();
    let mut first = true;
    loop {
        let timeout = if first { Some(config.handshake_timeout) } else { config.idle_timeout };
        let next = tokio::select! {
            n = reader.next(&mut r, timeout) => n,
            _ = raised(&mut stop) => return,
            _ = raised(&mut kill) => return,
        };
        let (header, payload) = match next {
            Ok(f) => f,
            Err(ReadError::Eof) => return,
            Err(ReadError::Timeout) => {
                log::debug!(
                    "msg: closing {}: {} timeout",
                    conn.peer,
                    if first { "handshake" } else { "idle" }
                );
                conn.close();
                return;
            }
            Err(ReadError::Fail(e)) => {
                // netaio closes the connection on a malformed frame; we say why first.
                log::debug!("msg: closing {}: {e}", conn.peer);
                if matches!(e, Error::Protocol(_) | Error::Oversize { .. }) {
                    let reason = if matches!(e, Error::Oversize { .. }) {
                        "message too large"
                    } else {
                        "malformed message"
                    };
                    if let Ok(b) = encode(&Message::error(reason, &b"ERROR"[..])) {
                        let _ = conn.outbox.try_send(b);
                    }
                }
                return;
            }
        };
        first = false;
        let auth_bytes = payload.slice(..header.auth_length as usize);
        let msg = match Message::decode_parts(header, payload) {
            Ok(m) => m,
            Err(Error::ChecksumMismatch { .. }) => {
                // netaio: ERROR "invalid message", sealed, connection kept. The auth fields did
                // decode, so a request id is echoed (the requester completes at once).
                let mut reply = Message::error("invalid message", &b"ERROR"[..]);
                if let Some(rid) = crate::msg::wire::AuthFields::decode(&auth_bytes)
                    .ok()
                    .and_then(|a| a.get_bytes(REQUEST_ID_FIELD).filter(|r| r.len() <= 16).map(<[u8]>::to_vec))
                {
                    reply.auth.set_bytes(REQUEST_ID_FIELD, &rid);
                }
                if send_reply(&inner, &conn, reply).await.is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                log::debug!("msg: closing {}: {e}", conn.peer);
                return;
            }
        };
        let call = Call { conn: conn.clone(), server: Arc::downgrade(&inner) };
        if config.concurrent_handlers {
            let inner = inner.clone();
            let conn = conn.clone();
            tokio::spawn(async move {
                if let Outcome::Reply(reply) =
                    router::dispatch(&inner.router, &inner.config.layers, msg, Some(conn.peer), call).await
                {
                    if let Ok(b) = encode(&reply) {
                        let _ = conn.outbox.send(b).await;
                    }
                }
            });
        } else {
            // A handler still running when the server stops or drops the connection is abandoned.
            let outcome = tokio::select! {
                o = router::dispatch(&inner.router, &config.layers, msg, Some(conn.peer), call) => o,
                _ = raised(&mut stop) => return,
                _ = raised(&mut kill) => return,
            };
            let Outcome::Reply(reply) = outcome else { continue };
            match encode(&reply) {
                Ok(b) => {
                    if conn.outbox.send(b).await.is_err() {
                        return;
                    }
                }
                Err(e) => log::warn!("msg: reply to {} not sent: {e}", conn.peer),
            }
        }
    }
}

async fn send_reply(inner: &ServerInner, conn: &Conn, mut reply: Message) -> Result<()> {
    inner.config.layers.seal(&mut reply)?;
    conn.outbox.send(encode(&reply)?).await
}
