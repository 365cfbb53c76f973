//! The in-memory resource broker of `norman msg serve`: [`Store`] says what each request does to
//! the contents and what it answers (no I/O); [`start`] puts it behind a message server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use norman::msg::{handler, Call, Key, Message, MessageType, Server, ServerConfig};

use super::LayerSpec;
use crate::CliResult;

/// What a request asks of the broker (the message types it serves).
/// The broker's operations, which are also the `--type` values of `norman msg request`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Request,
    Create,
    Update,
    Delete,
    Publish,
    Subscribe,
    Unsubscribe,
}

impl Op {
    pub const ALL: [Op; 7] =
        [Op::Request, Op::Create, Op::Update, Op::Delete, Op::Publish, Op::Subscribe, Op::Unsubscribe];

    /// The message type that asks for this operation.
    pub fn message_type(self) -> MessageType {
        match self {
            Op::Request => MessageType::REQUEST_URI,
            Op::Create => MessageType::CREATE_URI,
            Op::Update => MessageType::UPDATE_URI,
            Op::Delete => MessageType::DELETE_URI,
            Op::Publish => MessageType::PUBLISH_URI,
            Op::Subscribe => MessageType::SUBSCRIBE_URI,
            Op::Unsubscribe => MessageType::UNSUBSCRIBE_URI,
        }
    }
}

/// The reply to send back (its uri is always the request's).
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Respond(Vec<u8>),
    Ok,
    NotFound,
    ConfirmSubscribe,
    ConfirmUnsubscribe,
    /// ERROR with this text (the store is full).
    Error(&'static str),
}

/// The outcome of one request: the reply, and the content to notify the uri's subscribers with.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Reply,
    pub notify: Option<Vec<u8>>,
}

/// Contents by uri, with a bound on the bytes held (uris + contents), checked before storing.
pub struct Store {
    map: HashMap<Vec<u8>, Vec<u8>>,
    held: usize,
    max_bytes: usize,
}

impl Store {
    pub fn new(max_bytes: usize) -> Store {
        Store { map: HashMap::new(), held: 0, max_bytes }
    }

    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Applies `op` to the store. Subscriptions themselves are the server's (they die with the
    /// connection); the broker only confirms them.
    pub fn apply(&mut self, op: Op, uri: &[u8], content: &[u8]) -> Outcome {
        let reply = |reply| Outcome { reply, notify: None };
        match op {
            Op::Request if uri == b"echo" => reply(Reply::Respond(content.to_vec())),
            Op::Request => match self.map.get(uri) {
                Some(stored) => reply(Reply::Respond(stored.clone())),
                None => reply(Reply::NotFound),
            },
            Op::Create | Op::Update => {
                let old = self.map.get(uri).map_or(0, |v| uri.len() + v.len());
                let new = uri.len() + content.len();
                if self.held - old + new > self.max_bytes {
                    return reply(Reply::Error("store full"));
                }
                self.held = self.held - old + new;
                match self.map.get_mut(uri) {
                    Some(stored) => {
                        stored.clear();
                        stored.extend_from_slice(content);
                    }
                    None => {
                        self.map.insert(uri.to_vec(), content.to_vec());
                    }
                }
                Outcome { reply: Reply::Ok, notify: Some(content.to_vec()) }
            }
            Op::Delete => {
                if let Some(old) = self.map.remove(uri) {
                    self.held -= uri.len() + old.len();
                }
                Outcome { reply: Reply::Ok, notify: Some(Vec::new()) }
            }
            Op::Publish => Outcome { reply: Reply::Ok, notify: Some(content.to_vec()) },
            Op::Subscribe => reply(Reply::ConfirmSubscribe),
            Op::Unsubscribe => reply(Reply::ConfirmUnsubscribe),
        }
    }
}

impl Reply {
    fn message(self, uri: Bytes) -> Message {
        let (t, content) = match self {
            Reply::Respond(c) => (MessageType::RESPOND_URI, Bytes::from(c)),
            Reply::Ok => (MessageType::OK, Bytes::new()),
            // netaio's own text, so that its requesters see what they would see from netaio.
            Reply::NotFound => (MessageType::NOT_FOUND, Bytes::from_static(b"not found")),
            Reply::ConfirmSubscribe => (MessageType::CONFIRM_SUBSCRIBE, Bytes::new()),
            Reply::ConfirmUnsubscribe => (MessageType::CONFIRM_UNSUBSCRIBE, Bytes::new()),
            Reply::Error(text) => (MessageType::ERROR, Bytes::from_static(text.as_bytes())),
        };
        Message::new(t, uri, content)
    }
}

/// Starts the broker on `listen`: the outer layers on the server, the inner ones on every handler
/// (they also seal the notifications, inside the outer ones, as netaio's notify with plugins).
pub async fn start(
    listen: SocketAddr,
    layers: &LayerSpec,
    max_store_bytes: usize,
    max_connections: usize,
) -> CliResult<Server> {
    let server =
        Server::new(ServerConfig { layers: layers.outer(), max_connections, ..ServerConfig::default() });
    let store = Arc::new(Mutex::new(Store::new(max_store_bytes)));
    let inner = layers.inner();
    for op in Op::ALL {
        let message_type = op.message_type();
        let (store, note_layers) = (store.clone(), inner.clone());
        let serve_one = move |msg: Message, call: Call| {
            let outcome = store.lock().unwrap_or_else(|p| p.into_inner()).apply(op, &msg.uri, &msg.content);
            match op {
                Op::Subscribe => call.subscribe(&msg.uri),
                Op::Unsubscribe => call.unsubscribe(&msg.uri),
                _ => {}
            }
            let note_layers = note_layers.clone();
            async move {
                if let (Some(content), Some(server)) = (outcome.notify, call.server()) {
                    if server.subscribers(&msg.uri) > 0 {
                        let mut note =
                            Message::new(MessageType::NOTIFY_URI, msg.uri.clone(), Bytes::from(content));
                        match note_layers.seal(&mut note) {
                            Ok(()) => {
                                let _ = server.notify_message(&msg.uri, note).await;
                            }
                            Err(e) => log_error(&format!("sealing a notification: {e}")),
                        }
                    }
                }
                Some(outcome.reply.message(msg.uri))
            }
        };
        server.route(Key::Type(message_type), inner.clone(), false, handler(serve_one));
    }
    server.listen(&listen.to_string()).await.map_err(|e| format!("--listen {listen}: {e}"))?;
    Ok(server)
}

fn log_error(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "norman msg serve: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crud_echo_and_notifications() {
        let mut s = Store::new(1 << 20);
        assert_eq!(s.apply(Op::Request, b"a", b""), Outcome { reply: Reply::NotFound, notify: None });
        assert_eq!(
            s.apply(Op::Create, b"a", b"one"),
            Outcome { reply: Reply::Ok, notify: Some(b"one".to_vec()) }
        );
        assert_eq!(s.apply(Op::Request, b"a", b"ignored").reply, Reply::Respond(b"one".to_vec()));
        assert_eq!(s.apply(Op::Update, b"a", b"two").notify, Some(b"two".to_vec()));
        assert_eq!(s.apply(Op::Request, b"a", b"").reply, Reply::Respond(b"two".to_vec()));
        assert_eq!(s.held_bytes(), 4);
        assert_eq!(s.apply(Op::Delete, b"a", b""), Outcome { reply: Reply::Ok, notify: Some(Vec::new()) });
        assert_eq!(s.held_bytes(), 0);
        assert_eq!(s.apply(Op::Request, b"a", b"").reply, Reply::NotFound);
        assert_eq!(s.apply(Op::Request, b"echo", b"\x00x").reply, Reply::Respond(b"\x00x".to_vec()));
        assert_eq!(
            s.apply(Op::Publish, b"t", b"p"),
            Outcome { reply: Reply::Ok, notify: Some(b"p".to_vec()) }
        );
        assert_eq!(s.apply(Op::Request, b"t", b"").reply, Reply::NotFound, "publish stores nothing");
        assert_eq!(s.apply(Op::Subscribe, b"t", b"").reply, Reply::ConfirmSubscribe);
        assert_eq!(s.apply(Op::Unsubscribe, b"t", b"").reply, Reply::ConfirmUnsubscribe);
    }

    #[test]
    fn the_store_is_bounded() {
        let mut s = Store::new(10);
        assert_eq!(s.apply(Op::Create, b"a", b"123456789").reply, Reply::Ok);
        assert_eq!(s.apply(Op::Create, b"b", b"1").reply, Reply::Error("store full"));
        // Replacing counts the old value as freed.
        assert_eq!(s.apply(Op::Update, b"a", b"12345678").reply, Reply::Ok);
        assert_eq!(s.apply(Op::Create, b"b", b"").reply, Reply::Ok);
        assert_eq!(s.held_bytes(), 10);
        assert_eq!(s.apply(Op::Request, b"b", b"").reply, Reply::Respond(Vec::new()));
    }
}
