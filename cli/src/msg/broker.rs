//! The in-memory resource broker of `norman msg serve`: what each request does to the store and
//! what it answers. No I/O here; the server glue sends the reply and the notification.

use std::collections::HashMap;

/// What a request asks of the broker (the message types it serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request,
    Create,
    Update,
    Delete,
    Publish,
    Subscribe,
    Unsubscribe,
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
