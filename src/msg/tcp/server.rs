//! The message server: handlers, subscriptions, notify and broadcast, shutdown.

mod tasks;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

use crate::error::{Error, Result};
use crate::msg::layer::Layers;
use crate::msg::router::{handler, Handler, Key, Router};
use crate::msg::tcp::conn::{encode, Full, Outbox};
use crate::msg::tcp::lock;
use crate::msg::wire::{Limits, Message, MessageType};
use tasks::accept_loop;

/// What happens to a notification or broadcast for a connection whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Close that connection (the default: one slow subscriber never holds up the others).
    Disconnect,
    /// Wait up to this long for room, then close it.
    Wait(Duration),
}

/// Server settings; `Default` gives no layers and the limits below.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Instance (outer) layers: open every message, seal every reply, notification and broadcast.
    pub layers: Layers,
    /// Size limits of received messages.
    pub limits: Limits,
    /// Connections beyond this are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection silent this long is closed (`None`: never); each message must also arrive
    /// whole within this time of the previous one.
    pub idle_timeout: Option<Duration>,
    /// The first complete message must arrive within this time of the connection (a deadline,
    /// not a per-read timeout).
    pub handshake_timeout: Duration,
    /// Bytes queued for one connection's writer at most.
    pub queue_bytes: usize,
    /// What to do when a connection's writer queue is full.
    pub slow_consumer: SlowConsumer,
    /// Run each message's handler in a task of its own (replies may then leave out of order);
    /// by default a connection's messages are handled one after the other.
    pub concurrent_handlers: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            layers: Layers::new(),
            limits: Limits::default(),
            max_connections: 4096,
            idle_timeout: Some(Duration::from_secs(600)),
            handshake_timeout: Duration::from_secs(10),
            queue_bytes: 1 << 20,
            slow_consumer: SlowConsumer::Disconnect,
            concurrent_handlers: false,
        }
    }
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    outbox: Outbox,
    kill: watch::Sender<bool>,
    subs: Mutex<HashSet<Bytes>>,
}

impl Conn {
    fn close(&self) {
        let _ = self.kill.send(true);
    }
}

struct ServerInner {
    config: ServerConfig,
    router: Router<Call>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    subs: Mutex<HashMap<Bytes, HashSet<u64>>>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
    local: Mutex<Option<SocketAddr>>,
    live_tasks: AtomicUsize,
    tasks_done: Notify,
    slots: Arc<Semaphore>,
    dropped_slow: AtomicU64,
}

/// A message server. Cheap to clone; handlers may be added before or after [`Server::listen`].
/// Dropping the last clone stops it (as [`Server::shutdown`] does, without waiting).
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
    _guard: Arc<StopOnDrop>,
}

struct StopOnDrop(Weak<ServerInner>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let _ = inner.stop.send(true);
        }
    }
}

impl Server {
    /// A handle for handlers: it does not keep the server running.
    fn handle(inner: Arc<ServerInner>) -> Server {
        Server { inner, _guard: Arc::new(StopOnDrop(Weak::new())) }
    }
}

/// The context of a handler: the connection a message came on.
#[derive(Clone)]
pub struct Call {
    conn: Arc<Conn>,
    server: Weak<ServerInner>,
}

impl Call {
    /// The connection's remote address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// An id of the connection, unique in this server.
    pub fn conn_id(&self) -> u64 {
        self.conn.id
    }

    /// Subscribes this connection to `uri` (notifications until it unsubscribes or disconnects).
    pub fn subscribe(&self, uri: &[u8]) {
        if let Some(s) = self.server.upgrade() {
            Server::handle(s).subscribe(self.conn.id, uri);
        }
    }

    /// Unsubscribes this connection from `uri`.
    pub fn unsubscribe(&self, uri: &[u8]) {
        if let Some(s) = self.server.upgrade() {
            Server::handle(s).unsubscribe(self.conn.id, uri);
        }
    }

    /// The server (for notify or broadcast from a handler).
    pub fn server(&self) -> Option<Server> {
        self.server.upgrade().map(Server::handle)
    }

    /// Sends `msg` on this connection, sealed with the instance layers (waits for room).
    pub async fn send(&self, mut msg: Message) -> Result<()> {
        let server = self.server().ok_or_else(|| Error::Closed("the server is shut down".into()))?;
        server.inner.config.layers.seal(&mut msg)?;
        self.conn.outbox.send(encode(&msg)?).await
    }
}

/// Counters of a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Open connections now.
    pub connections: usize,
    /// Bytes waiting in all writer queues now.
    pub queued_bytes: usize,
    /// Connections closed because their queue was full (slow consumers).
    pub dropped_slow: u64,
}

struct TaskGuard(Arc<ServerInner>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live_tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks_done.notify_waiters();
        }
    }
}

fn task_guard(inner: &Arc<ServerInner>) -> TaskGuard {
    inner.live_tasks.fetch_add(1, Ordering::AcqRel);
    TaskGuard(inner.clone())
}

impl Server {
    /// A server with `config`, not yet listening (see [`Server::listen`]).
    pub fn new(config: ServerConfig) -> Server {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let inner = Arc::new(ServerInner {
            config,
            router: Router::default(),
            conns: Mutex::new(HashMap::new()),
            subs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stop: watch::channel(false).0,
            local: Mutex::new(None),
            live_tasks: AtomicUsize::new(0),
            tasks_done: Notify::new(),
            slots,
            dropped_slow: AtomicU64::new(0),
        });
        let guard = Arc::new(StopOnDrop(Arc::downgrade(&inner)));
        Server { inner, _guard: guard }
    }

    /// Handles messages of `message_type` (and `uri`, when given) with an async closure; its
    /// return value, if any, is the reply.
    pub fn on<F, Fut>(&self, message_type: MessageType, uri: Option<&[u8]>, f: F)
    where
        F: Fn(Message, Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Message>> + Send + 'static,
    {
        self.inner.router.add(Key::new(message_type, uri), Layers::new(), false, handler(f));
    }

    /// Registers a handler under any key, with inner layers, possibly one-shot.
    pub fn route(&self, key: Key, inner: Layers, once: bool, handler: Handler<Call>) {
        self.inner.router.add(key, inner, once, handler);
    }

    /// Unregisters the handler under `key`; false when there was none.
    pub fn remove_route(&self, key: &Key) -> bool {
        self.inner.router.remove(key)
    }

    /// The handler for unmatched messages (default: NOT_FOUND with the uri echoed).
    pub fn set_default(&self, handler: Option<Handler<Call>>) {
        self.inner.router.set_default(handler);
    }

    /// Binds `addr` (e.g. "127.0.0.1:0") and starts accepting; returns the bound address.
    pub async fn listen(&self, addr: &str) -> Result<SocketAddr> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Connect { addr: addr.to_owned(), source })?;
        let local = listener.local_addr().map_err(Error::io("reading the bound address"))?;
        *lock(&self.inner.local) = Some(local);
        let inner = self.inner.clone();
        let guard = task_guard(&inner);
        tokio::spawn(async move {
            let _guard = guard;
            accept_loop(inner, listener).await
        });
        Ok(local)
    }

    /// The bound address, once listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.inner.local)
    }

    /// Subscribes connection `conn_id` to `uri` (no-op when it is gone).
    pub fn subscribe(&self, conn_id: u64, uri: &[u8]) {
        let Some(conn) = lock(&self.inner.conns).get(&conn_id).cloned() else { return };
        let uri = Bytes::copy_from_slice(uri);
        lock(&conn.subs).insert(uri.clone());
        lock(&self.inner.subs).entry(uri).or_default().insert(conn_id);
    }

    /// Unsubscribes connection `conn_id` from `uri`.
    pub fn unsubscribe(&self, conn_id: u64, uri: &[u8]) {
        if let Some(conn) = lock(&self.inner.conns).get(&conn_id) {
            lock(&conn.subs).remove(uri);
        }
        let mut subs = lock(&self.inner.subs);
        if let Some(set) = subs.get_mut(uri) {
            set.remove(&conn_id);
            if set.is_empty() {
                subs.remove(uri);
            }
        }
    }

    /// Number of connections subscribed to `uri`.
    pub fn subscribers(&self, uri: &[u8]) -> usize {
        lock(&self.inner.subs).get(uri).map_or(0, HashSet::len)
    }

    /// Sends NOTIFY_URI (uri, content) to every subscriber of `uri`; returns how many got it.
    pub async fn notify(&self, uri: &[u8], content: &[u8]) -> Result<usize> {
        let msg = Message::new(
            MessageType::NOTIFY_URI,
            Bytes::copy_from_slice(uri),
            Bytes::copy_from_slice(content),
        );
        self.notify_message(uri, msg).await
    }

    /// Sends `msg` to every subscriber of `uri`.
    pub async fn notify_message(&self, uri: &[u8], msg: Message) -> Result<usize> {
        let ids: Vec<u64> =
            lock(&self.inner.subs).get(uri).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let conns: Vec<Arc<Conn>> = {
            let all = lock(&self.inner.conns);
            ids.iter().filter_map(|id| all.get(id).cloned()).collect()
        };
        self.fan_out(conns, msg).await
    }

    /// Sends `msg` to every connected client; returns how many got it.
    pub async fn broadcast(&self, msg: Message) -> Result<usize> {
        let conns: Vec<Arc<Conn>> = lock(&self.inner.conns).values().cloned().collect();
        self.fan_out(conns, msg).await
    }

    async fn fan_out(&self, conns: Vec<Arc<Conn>>, msg: Message) -> Result<usize> {
        let layers = &self.inner.config.layers;
        let once = if layers.per_recipient() {
            None
        } else {
            let mut m = msg.clone();
            layers.seal(&mut m)?;
            Some(encode(&m)?)
        };
        let mut sent = 0;
        for conn in conns {
            let bytes = match &once {
                Some(b) => b.clone(),
                None => {
                    let mut m = msg.clone();
                    layers.seal(&mut m)?;
                    encode(&m)?
                }
            };
            match conn.outbox.try_send(bytes) {
                Ok(()) => sent += 1,
                Err(Full::Closed) => {}
                Err(Full::Full(bytes)) => {
                    let waited = match self.inner.config.slow_consumer {
                        SlowConsumer::Disconnect => false,
                        SlowConsumer::Wait(d) => {
                            matches!(tokio::time::timeout(d, conn.outbox.send(bytes)).await, Ok(Ok(())))
                        }
                    };
                    if waited {
                        sent += 1;
                    } else {
                        log::warn!("msg: closing slow consumer {} (writer queue full)", conn.peer);
                        self.inner.dropped_slow.fetch_add(1, Ordering::Relaxed);
                        conn.close();
                    }
                }
            }
        }
        Ok(sent)
    }

    /// The counters now.
    pub fn stats(&self) -> ServerStats {
        let conns = lock(&self.inner.conns);
        ServerStats {
            connections: conns.len(),
            queued_bytes: conns.values().map(|c| c.outbox.queued()).sum(),
            dropped_slow: self.inner.dropped_slow.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, closes every connection (queued replies get a second to go out) and
    /// waits for the server's tasks to end.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let conns: Vec<Arc<Conn>> = lock(&self.inner.conns).drain().map(|(_, c)| c).collect();
        lock(&self.inner.subs).clear();
        let flush = async {
            for c in &conns {
                while c.outbox.queued() > 0 && !c.outbox.budget.is_closed() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
        for c in &conns {
            c.close();
        }
        drop(conns);
        let wait = async {
            loop {
                let notified = self.inner.tasks_done.notified();
                if self.inner.live_tasks.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }
}
