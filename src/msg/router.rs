//! Handlers and routing (WIRE.md §3): keys `(type, uri, peer)`, then `(type, uri)`, then `type`;
//! one-shot handlers; a default handler. [`dispatch`] runs the receive path shared by the TCP
//! server and the UDP node: instance layers, route, the handler's own layers, handler, and seals
//! the reply with the handler's layers then the instance layers. Unlike netaio, a message whose
//! inner check fails never reaches its handler, and the default NOT_FOUND reply echoes the uri
//! (and request id) so that a requester completes at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::layer::Layers;
use super::wire::{Message, MessageType};
use super::REQUEST_ID_FIELD;
use crate::error::Error;

/// A boxed, sendable future (what handlers return).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A handler: gets the opened message and a context (the TCP connection or UDP sender), returns
/// an optional reply.
pub type Handler<C> = Arc<dyn Fn(Message, C) -> BoxFuture<Option<Message>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<C, F, Fut>(f: F) -> Handler<C>
where
    F: Fn(Message, C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Message>> + Send + 'static,
{
    Arc::new(move |m, c| Box::pin(f(m, c)))
}

/// A routing key, most specific first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A message type and URI from one peer.
    TypeUriPeer(MessageType, Bytes, SocketAddr),
    /// A message type and URI.
    TypeUri(MessageType, Bytes),
    /// A message type.
    Type(MessageType),
}

impl Key {
    /// `(type, uri)` when `uri` is given, else `type`.
    pub fn new(message_type: MessageType, uri: Option<&[u8]>) -> Key {
        match uri {
            Some(u) => Key::TypeUri(message_type, Bytes::copy_from_slice(u)),
            None => Key::Type(message_type),
        }
    }
}

/// A registered handler with the layers it adds inside the instance layers.
pub struct Route<C> {
    /// The handler.
    pub handler: Handler<C>,
    /// Layers opened after routing and sealing the reply.
    pub inner: Layers,
    once: bool,
}

/// The handler table. Cheap reads on every message; registration at any time.
pub struct Router<C> {
    routes: RwLock<HashMap<Key, Arc<Route<C>>>>,
    default: RwLock<Option<Handler<C>>>,
}

impl<C> Default for Router<C> {
    fn default() -> Self {
        Router { routes: RwLock::new(HashMap::new()), default: RwLock::new(None) }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl<C> Router<C> {
    /// Registers `handler` under `key` (replacing one there); `inner` layers are opened after
    /// routing and seal the reply; `once` removes it after its first message.
    pub fn add(&self, key: Key, inner: Layers, once: bool, handler: Handler<C>) {
        write(&self.routes).insert(key, Arc::new(Route { handler, inner, once }));
    }

    /// Unregisters the handler under `key`; false when there was none.
    pub fn remove(&self, key: &Key) -> bool {
        write(&self.routes).remove(key).is_some()
    }

    /// The handler for messages no key matches (without one: a NOT_FOUND reply).
    pub fn set_default(&self, handler: Option<Handler<C>>) {
        *write(&self.default) = handler;
    }

    /// The handler for unmatched messages, if set.
    pub fn default_handler(&self) -> Option<Handler<C>> {
        read(&self.default).clone()
    }

    /// The route for `msg` from `peer`, trying the keys in netaio's order; a one-shot route is
    /// removed (only one message gets it).
    pub fn lookup(&self, msg: &Message, peer: Option<SocketAddr>) -> Option<Arc<Route<C>>> {
        let mut keys = [
            peer.map(|p| Key::TypeUriPeer(msg.message_type, msg.uri.clone(), p)),
            Some(Key::TypeUri(msg.message_type, msg.uri.clone())),
            Some(Key::Type(msg.message_type)),
        ];
        for key in keys.iter_mut().filter_map(Option::take) {
            let found = read(&self.routes).get(&key).cloned();
            if let Some(route) = found {
                if !route.once {
                    return Some(route);
                }
                let mut routes = write(&self.routes);
                // Still ours to take? (another message may have taken the one-shot route)
                if routes.get(&key).is_some_and(|r| Arc::ptr_eq(r, &route)) {
                    routes.remove(&key);
                    return Some(route);
                }
            }
        }
        None
    }
}

/// What the receive path produced.
pub enum Outcome {
    /// A reply, already sealed, for the sender.
    Reply(Message),
    /// Nothing to send.
    None,
}

/// The AUTH_ERROR netaio sends when a check fails: plain, uri `ERROR`, "`<layer>` auth failed";
/// none for a message whose type is ERROR or AUTH_ERROR (loop prevention). We add the request
/// id, so a libnorman requester completes at once.
pub fn auth_error_reply(failed: &Message, layer: &str) -> Option<Message> {
    if failed.message_type.is_error_named() {
        return None;
    }
    let mut reply = Message::error(&format!("{layer} auth failed"), &b"ERROR"[..]);
    reply.message_type = MessageType::AUTH_ERROR;
    copy_request_id(failed, &mut reply);
    Some(reply)
}

fn copy_request_id(from: &Message, to: &mut Message) {
    if to.auth.get(REQUEST_ID_FIELD).is_none() {
        if let Some(rid) = from.auth.get_bytes(REQUEST_ID_FIELD) {
            if rid.len() <= 16 {
                let rid = rid.to_vec();
                to.auth.set_bytes(REQUEST_ID_FIELD, &rid);
            }
        }
    }
}

/// The receive path after decoding: instance `outer` layers, route, inner layers, handler, reply
/// sealed with inner then outer layers.
pub async fn dispatch<C>(
    router: &Router<C>,
    outer: &Layers,
    msg: Message,
    peer: Option<SocketAddr>,
    ctx: C,
) -> Outcome {
    match open_outer(outer, msg, peer) {
        Ok(msg) => dispatch_opened(router, outer, msg, peer, ctx).await,
        Err(outcome) => outcome,
    }
}

/// Opens the instance layers; on failure, what to answer (AUTH_ERROR or nothing).
pub fn open_outer(outer: &Layers, mut msg: Message, peer: Option<SocketAddr>) -> Result<Message, Outcome> {
    match outer.open(&mut msg) {
        Ok(()) => Ok(msg),
        Err(Error::MsgAuth { layer }) => Err(match auth_error_reply(&msg, layer) {
            Some(r) => Outcome::Reply(r),
            None => Outcome::None,
        }),
        Err(e) => {
            log::debug!("msg: dropped a message from {peer:?}: {e}");
            Err(Outcome::None)
        }
    }
}

/// [`dispatch`] for a message whose instance layers are already open.
pub async fn dispatch_opened<C>(
    router: &Router<C>,
    outer: &Layers,
    mut msg: Message,
    peer: Option<SocketAddr>,
    ctx: C,
) -> Outcome {
    let route = router.lookup(&msg, peer);
    let (handler, inner) = match route {
        Some(route) => {
            if let Err(e) = route.inner.open(&mut msg) {
                return match e {
                    Error::MsgAuth { layer } => match auth_error_reply(&msg, layer) {
                        Some(r) => Outcome::Reply(r),
                        None => Outcome::None,
                    },
                    e => {
                        log::debug!("msg: dropped a message from {peer:?}: {e}");
                        Outcome::None
                    }
                };
            }
            (Some(route.handler.clone()), route.inner.clone())
        }
        None => (router.default_handler(), Layers::new()),
    };
    let request_type = msg.message_type;
    let rid = msg.auth.get_bytes(REQUEST_ID_FIELD).map(<[u8]>::to_vec);
    let uri = msg.uri.clone();
    let reply = match handler {
        Some(h) => h(msg, ctx).await,
        // No handler: NOT_FOUND, with the uri echoed (netaio sends an empty uri nobody matches).
        None if request_type.is_answer() => None,
        None => Some(Message::new(MessageType::NOT_FOUND, uri, &b"not found"[..])),
    };
    let Some(mut reply) = reply else { return Outcome::None };
    if let Some(rid) = rid {
        if reply.auth.get(REQUEST_ID_FIELD).is_none() && rid.len() <= 16 {
            reply.auth.set_bytes(REQUEST_ID_FIELD, &rid);
        }
    }
    if let Err(e) = inner.seal(&mut reply).and_then(|_| outer.seal(&mut reply)) {
        log::warn!("msg: could not seal a reply to {peer:?}: {e}");
        return Outcome::None;
    }
    Outcome::Reply(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: &'static str) -> Handler<()> {
        handler(move |m: Message, _c: ()| async move { Some(m.reply(MessageType::OK, tag)) })
    }

    async fn run(r: &Router<()>, m: Message, peer: SocketAddr) -> Option<Message> {
        match dispatch(r, &Layers::new(), m, Some(peer), ()).await {
            Outcome::Reply(m) => Some(m),
            Outcome::None => None,
        }
    }

    #[tokio::test]
    async fn keys_in_order_once_and_default() {
        let r: Router<()> = Router::default();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:10".parse().unwrap();
        r.add(Key::Type(MessageType::REQUEST_URI), Layers::new(), false, tagged("type"));
        r.add(Key::new(MessageType::REQUEST_URI, Some(b"a")), Layers::new(), false, tagged("uri"));
        r.add(
            Key::TypeUriPeer(MessageType::REQUEST_URI, Bytes::from_static(b"a"), peer),
            Layers::new(),
            true,
            tagged("once"),
        );
        let req = |uri: &'static [u8]| {
            let mut m = Message::new(MessageType::REQUEST_URI, uri, Bytes::new());
            m.auth.set_bytes(REQUEST_ID_FIELD, &[1; 8]);
            m
        };
        let content = |m: Option<Message>| m.map(|m| m.content);
        assert_eq!(content(run(&r, req(b"a"), peer).await), Some(Bytes::from_static(b"once")));
        assert_eq!(
            content(run(&r, req(b"a"), peer).await),
            Some(Bytes::from_static(b"uri")),
            "one-shot gone"
        );
        assert_eq!(content(run(&r, req(b"a"), other).await), Some(Bytes::from_static(b"uri")));
        assert_eq!(content(run(&r, req(b"b"), peer).await), Some(Bytes::from_static(b"type")));
        // No handler: NOT_FOUND with the uri and request id echoed; none for answers.
        let nf = run(&r, Message::new(MessageType::CREATE_URI, &b"z"[..], Bytes::new()), peer).await.unwrap();
        assert_eq!(
            (nf.message_type, &nf.uri[..], &nf.content[..]),
            (MessageType::NOT_FOUND, &b"z"[..], &b"not found"[..])
        );
        assert!(run(&r, Message::new(MessageType::OK, &b"z"[..], Bytes::new()), peer).await.is_none());
        let reply = run(&r, req(b"b"), peer).await.unwrap();
        assert_eq!(reply.auth.get_bytes(REQUEST_ID_FIELD), Some(&[1u8; 8][..]));
        r.set_default(Some(tagged("default")));
        assert_eq!(
            content(run(&r, Message::new(MessageType::CREATE_URI, &b"z"[..], Bytes::new()), peer).await),
            Some(Bytes::from_static(b"default"))
        );
        assert!(r.remove(&Key::Type(MessageType::REQUEST_URI)));
    }

    #[tokio::test]
    async fn auth_errors() {
        // The inner layer needs its own MAC field (the outer one would overwrite "hmac").
        let inner =
            || Layers::new().with(crate::msg::NetaioHmac::new(b"inner").fields("hmac2", "nonce", "ts"));
        let r: Router<()> = Router::default();
        r.add(Key::Type(MessageType::REQUEST_URI), inner(), false, tagged("x"));
        let outer = Layers::netaio(Some(b"outer"), None);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // Outer check fails: plain AUTH_ERROR "HMAC auth failed", uri ERROR.
        let m = Message::new(MessageType::REQUEST_URI, &b"a"[..], Bytes::new());
        let Outcome::Reply(e) = dispatch(&r, &outer, m.clone(), Some(peer), ()).await else { panic!() };
        assert_eq!(
            (e.message_type, &e.uri[..], &e.content[..]),
            (MessageType::AUTH_ERROR, &b"ERROR"[..], &b"HMAC auth failed"[..])
        );
        assert!(e.auth.is_empty());
        // Nothing for a failing ERROR message (loop prevention).
        let err = Message::error("boom", &b"ERROR"[..]);
        assert!(matches!(dispatch(&r, &outer, err, Some(peer), ()).await, Outcome::None));
        // Inner check fails: AUTH_ERROR, and the handler does not run.
        let mut m2 = m.clone();
        outer.seal(&mut m2).unwrap();
        let Outcome::Reply(e) = dispatch(&r, &outer, m2, Some(peer), ()).await else { panic!() };
        assert_eq!(e.message_type, MessageType::AUTH_ERROR);
        // Both pass: the reply is sealed with both layers.
        let mut m3 = m;
        inner().seal(&mut m3).unwrap();
        outer.seal(&mut m3).unwrap();
        let Outcome::Reply(mut ok) = dispatch(&r, &outer, m3, Some(peer), ()).await else { panic!() };
        assert_eq!(ok.message_type, MessageType::OK);
        outer.open(&mut ok).unwrap();
        inner().open(&mut ok).unwrap();
        assert_eq!(&ok.content[..], b"x");
    }
}
