//! The message client: requests with deadlines, unsolicited messages, reconnection.

mod tasks;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::msg::layer::Layers;
use crate::msg::router::{handler, Handler, Key, Router};
use crate::msg::tcp::conn::{encode, Outbox};
use crate::msg::tcp::lock;
use crate::msg::wire::{Limits, Message, MessageType};
use crate::msg::REQUEST_ID_FIELD;
use tasks::{install, supervise};

/// Reconnection after a lost connection: delays double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(5), attempts: None }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Instance (outer) layers for everything sent and received.
    pub layers: Layers,
    /// Size limits of received messages.
    pub limits: Limits,
    /// Timeout of each connect attempt.
    pub connect_timeout: Duration,
    /// Reconnect after a lost connection (`None`: the client is closed for good).
    pub reconnect: Option<Backoff>,
    /// Bytes queued for the writer at most (senders wait for room).
    pub queue_bytes: usize,
    /// Add a request id auth field to requests (libnorman servers echo it: concurrent requests
    /// to one uri never get each other's replies; netaio servers ignore it).
    pub request_ids: bool,
    /// Unsolicited messages kept for [`Client::recv`] at most (more are dropped, with a log line).
    pub inbox: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            layers: Layers::new(),
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(5),
            reconnect: None,
            queue_bytes: 1 << 20,
            request_ids: true,
            inbox: 1024,
        }
    }
}

struct Waiter {
    tx: oneshot::Sender<Result<Message>>,
    uri: Bytes,
    expect: [MessageType; 2],
    inner: Layers,
}

#[derive(Default)]
struct Pending {
    by_id: HashMap<u64, Waiter>,
    by_uri: HashMap<Bytes, VecDeque<u64>>,
}

impl Pending {
    fn take(&mut self, id: u64) -> Option<Waiter> {
        let w = self.by_id.remove(&id)?;
        if let Some(q) = self.by_uri.get_mut(&w.uri) {
            q.retain(|x| *x != id);
            if q.is_empty() {
                self.by_uri.remove(&w.uri);
            }
        }
        Some(w)
    }

    /// The oldest request on `uri` that a reply of type `t` answers.
    fn take_by_uri(&mut self, uri: &[u8], t: MessageType) -> Option<Waiter> {
        let id = *self
            .by_uri
            .get(uri)?
            .iter()
            .find(|id| self.by_id.get(id).is_some_and(|w| t.is_error() || w.expect.contains(&t)))?;
        self.take(id)
    }

    /// Fails every request in flight, telling each once the lock is released: a waiter's wake-up
    /// may complete its request on the spot (the C API's eager operations), and that takes the
    /// lock again. The same holds wherever a waiter is told or dropped.
    fn fail_all(pending: &Mutex<Pending>, why: &str) {
        let waiters: Vec<Waiter> = {
            let mut p = lock(pending);
            p.by_uri.clear();
            p.by_id.drain().map(|(_, w)| w).collect()
        };
        for w in waiters {
            let _ = w.tx.send(Err(Error::Closed(why.to_owned())));
        }
    }
}

struct ClientInner {
    config: ClientConfig,
    addr: String,
    outbox: Mutex<Option<Outbox>>,
    pending: Mutex<Pending>,
    router: Router<Client>,
    inbox_tx: mpsc::Sender<Message>,
    inbox_rx: tokio::sync::Mutex<mpsc::Receiver<Message>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    stop: watch::Sender<bool>,
    connected: watch::Sender<bool>,
}

/// Closes the client when the last user handle goes.
struct CloseOnDrop(Weak<ClientInner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.shut();
        }
    }
}

/// A connection to a message server. Cheap to clone; dropping the last clone closes it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
    _guard: Arc<CloseOnDrop>,
}

impl ClientInner {
    fn shut(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        *lock(&self.outbox) = None;
        Pending::fail_all(&self.pending, "the client was closed");
    }
}

async fn connect_stream(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::Timeout { during: "connecting", after_ms: timeout.as_millis() })?
        .map_err(|source| Error::Connect { addr: addr.to_owned(), source })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn expected_replies(t: MessageType) -> [MessageType; 2] {
    match t {
        MessageType::REQUEST_URI => [MessageType::RESPOND_URI, MessageType::OK],
        MessageType::SUBSCRIBE_URI => [MessageType::CONFIRM_SUBSCRIBE, MessageType::OK],
        MessageType::UNSUBSCRIBE_URI => [MessageType::CONFIRM_UNSUBSCRIBE, MessageType::OK],
        _ => [MessageType::OK, MessageType::RESPOND_URI],
    }
}

impl Client {
    /// Connects to `addr` ("host:port") within `config.connect_timeout`.
    pub async fn connect(addr: &str, config: ClientConfig) -> Result<Client> {
        let stream = connect_stream(addr, config.connect_timeout).await?;
        let (inbox_tx, inbox_rx) = mpsc::channel(config.inbox.max(1));
        let inner = Arc::new(ClientInner {
            config,
            addr: addr.to_owned(),
            outbox: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            router: Router::default(),
            inbox_tx,
            inbox_rx: tokio::sync::Mutex::new(inbox_rx),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            stop: watch::channel(false).0,
            connected: watch::channel(false).0,
        });
        let guard = Arc::new(CloseOnDrop(Arc::downgrade(&inner)));
        let reader = install(&inner, stream);
        tokio::spawn(supervise(Arc::downgrade(&inner), reader));
        Ok(Client { inner, _guard: guard })
    }

    /// The address given to [`Client::connect`].
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.outbox).is_some()
    }

    /// Waits until connected (after a reconnection), up to `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.inner.connected.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .map_err(|_| Error::Timeout { during: "reconnecting", after_ms: timeout.as_millis() })?
            .map_err(|_| Error::Closed("the client was closed".into()))?;
        Ok(())
    }

    fn outbox(&self) -> Result<Outbox> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the client was closed".into()));
        }
        lock(&self.inner.outbox)
            .clone()
            .ok_or_else(|| Error::Closed(format!("not connected to {} (connection lost)", self.inner.addr)))
    }

    /// Sends `msg` sealed with the instance layers (waits while the queue is full).
    pub async fn send(&self, msg: Message) -> Result<()> {
        self.send_with(msg, &Layers::new()).await
    }

    /// Sends `msg` sealed with `inner` layers, then the instance layers.
    pub async fn send_with(&self, mut msg: Message, inner: &Layers) -> Result<()> {
        let outbox = self.outbox()?;
        inner.seal(&mut msg)?;
        self.inner.config.layers.seal(&mut msg)?;
        outbox.send(encode(&msg)?).await
    }

    /// Sends a request and waits up to `deadline` for its reply. A reply of type ERROR,
    /// AUTH_ERROR, NOT_FOUND or NOT_PERMITTED is [`Error::Remote`]; a connection lost meanwhile
    /// is [`Error::Closed`] at once.
    pub async fn request(
        &self,
        message_type: MessageType,
        uri: &[u8],
        content: &[u8],
        deadline: Duration,
    ) -> Result<Message> {
        let msg = Message::new(message_type, Bytes::copy_from_slice(uri), Bytes::copy_from_slice(content));
        self.request_message(msg, &Layers::new(), deadline).await
    }

    /// [`Client::request`] with a prepared message and inner layers (they seal the request and
    /// open its reply).
    pub async fn request_message(
        &self,
        mut msg: Message,
        inner: &Layers,
        deadline: Duration,
    ) -> Result<Message> {
        let outbox = self.outbox()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if self.inner.config.request_ids {
            msg.auth.set_bytes(REQUEST_ID_FIELD, &id.to_be_bytes());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.inner.pending);
            p.by_id.insert(
                id,
                Waiter {
                    tx,
                    uri: msg.uri.clone(),
                    expect: expected_replies(msg.message_type),
                    inner: inner.clone(),
                },
            );
            p.by_uri.entry(msg.uri.clone()).or_default().push_back(id);
        }
        let sent = async {
            inner.seal(&mut msg)?;
            self.inner.config.layers.seal(&mut msg)?;
            // The reply is awaited next: write it now rather than wake the writer task.
            outbox.send_now(encode(&msg)?).await
        };
        let result = match tokio::time::timeout(deadline, sent).await {
            Ok(Ok(())) => match tokio::time::timeout_at(tokio::time::Instant::now() + deadline, rx).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_)) => Err(Error::Closed("the client was closed".into())),
                Err(_) => {
                    Err(Error::Timeout { during: "waiting for a reply", after_ms: deadline.as_millis() })
                }
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout { during: "sending a request", after_ms: deadline.as_millis() }),
        };
        let stale = lock(&self.inner.pending).take(id);
        drop(stale); // after the lock: see Pending::fail_all
        result
    }

    /// REQUEST_URI; the reply is RESPOND_URI.
    pub async fn get(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::REQUEST_URI, uri, b"", deadline).await
    }

    /// CREATE_URI with `content`; waits up to `deadline` for the reply.
    pub async fn create(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::CREATE_URI, uri, content, deadline).await
    }

    /// UPDATE_URI with `content`; waits up to `deadline` for the reply.
    pub async fn update(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::UPDATE_URI, uri, content, deadline).await
    }

    /// DELETE_URI; waits up to `deadline` for the reply.
    pub async fn delete(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::DELETE_URI, uri, b"", deadline).await
    }

    /// PUBLISH_URI with `content`; waits up to `deadline` for the reply.
    pub async fn publish(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::PUBLISH_URI, uri, content, deadline).await
    }

    /// SUBSCRIBE_URI; afterwards the notifications arrive at handlers or [`Client::recv`].
    pub async fn subscribe(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::SUBSCRIBE_URI, uri, b"", deadline).await
    }

    /// UNSUBSCRIBE_URI; waits up to `deadline` for the reply.
    pub async fn unsubscribe(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::UNSUBSCRIBE_URI, uri, b"", deadline).await
    }

    /// Handles unsolicited messages of `message_type` (and `uri`) as they arrive (on the reader
    /// task: keep it short). As with netaio's client, the return value is not sent.
    pub fn on<F, Fut>(&self, message_type: MessageType, uri: Option<&[u8]>, f: F)
    where
        F: Fn(Message, Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Message>> + Send + 'static,
    {
        self.inner.router.add(Key::new(message_type, uri), Layers::new(), false, handler(f));
    }

    /// Registers a handler under any key, with inner layers, possibly one-shot.
    pub fn route(&self, key: Key, inner: Layers, once: bool, handler: Handler<Client>) {
        self.inner.router.add(key, inner, once, handler);
    }

    /// The next unsolicited message no handler took (`None` once closed).
    pub async fn recv(&self) -> Option<Message> {
        let mut rx = self.inner.inbox_rx.lock().await;
        // Biased: what arrived before the close is still handed out.
        tokio::select! {
            biased;
            m = rx.recv() => m,
            _ = async { let mut s = self.inner.stop.subscribe(); let _ = s.wait_for(|s| *s).await; } => None,
        }
    }

    /// [`Client::recv`] with a timeout (`Ok(None)` when it passes).
    pub async fn recv_timeout(&self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.recv()).await.ok().flatten()
    }

    /// Closes the connection: requests in flight fail at once, queued messages get a moment to go.
    pub async fn close(&self) {
        self.inner.shut();
        tokio::task::yield_now().await;
    }
}
