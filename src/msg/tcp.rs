//! TCP server and client (WIRE.md §1.4: frames back to back on the stream, no handshake).
//!
//! Each connection has a reader task and a writer task. The writer drains a queue bounded in
//! bytes (`queue_bytes`), writing whatever is queued in one `write_all`. A sender waits for room
//! (backpressure: a client that does not read its replies stops being read); notifications and
//! broadcasts to a full queue follow [`SlowConsumer`], so a subscriber that stops reading never
//! makes the server buffer without bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

use super::layer::Layers;
use super::router::{self, handler, Handler, Key, Outcome, Router};
use super::wire::{Header, Limits, Message, MessageType, HEADER_LEN};
use super::REQUEST_ID_FIELD;
use crate::error::{Error, Result};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------------------------------------
// Shared connection plumbing: the bounded outbox, the writer task, the frame reader.

struct Frame {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// The sending side of a connection's writer queue, bounded in bytes.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::UnboundedSender<Frame>,
    budget: Arc<Semaphore>,
    cap: usize,
}

enum Full {
    Full(Bytes),
    Closed,
}

impl Outbox {
    fn new(cap: usize) -> (Outbox, mpsc::UnboundedReceiver<Frame>) {
        let cap = cap.max(1).min(u32::MAX as usize);
        let (tx, rx) = mpsc::unbounded_channel();
        (Outbox { tx, budget: Arc::new(Semaphore::new(cap)), cap }, rx)
    }

    fn permits(&self, len: usize) -> u32 {
        // A frame larger than the whole budget takes all of it (it goes out alone).
        len.clamp(1, self.cap) as u32
    }

    /// Queues `bytes`, waiting for room.
    async fn send(&self, bytes: Bytes) -> Result<()> {
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(self.permits(bytes.len()))
            .await
            .map_err(|_| Error::Closed("the connection is closed".into()))?;
        self.tx
            .send(Frame { bytes, _permit: permit })
            .map_err(|_| Error::Closed("the connection is closed".into()))
    }

    /// Queues `bytes` if there is room now.
    fn try_send(&self, bytes: Bytes) -> std::result::Result<(), Full> {
        match self.budget.clone().try_acquire_many_owned(self.permits(bytes.len())) {
            Ok(permit) => self.tx.send(Frame { bytes, _permit: permit }).map_err(|_| Full::Closed),
            Err(TryAcquireError::NoPermits) => Err(Full::Full(bytes)),
            Err(TryAcquireError::Closed) => Err(Full::Closed),
        }
    }

    fn queued(&self) -> usize {
        self.cap.saturating_sub(self.budget.available_permits())
    }
}

const BATCH: usize = 256 * 1024;

/// Resolves when `flag` turns true; never when its sender is gone without saying so.
async fn raised(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|f| *f).await.is_err() {
        std::future::pending::<()>().await
    }
}

/// Writes queued frames, coalescing whatever is queued into one write. Ends when every sender is
/// gone (after writing what was queued) or when `kill` fires.
async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Frame>,
    mut w: OwnedWriteHalf,
    budget: Arc<Semaphore>,
    mut kill: watch::Receiver<bool>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = raised(&mut kill) => None,
        };
        let Some(first) = first else { break };
        buf.extend_from_slice(&first.bytes);
        held.push(first._permit);
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    buf.extend_from_slice(&f.bytes);
                    held.push(f._permit);
                }
                Err(_) => break,
            }
        }
        let ok = tokio::select! {
            r = w.write_all(&buf) => r.is_ok(),
            _ = raised(&mut kill) => false,
        };
        buf.clear();
        held.clear();
        // A burst's buffer is not kept: a thousand idle connections must stay small.
        if buf.capacity() > 64 * 1024 {
            buf = Vec::new();
        }
        if !ok {
            break;
        }
    }
    // Wake senders waiting for room: nothing more will be written.
    budget.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
}

/// Reads frames from a stream into one growing buffer; each frame is split off without a copy.
struct FrameReader {
    buf: BytesMut,
    limits: Limits,
}

enum ReadError {
    /// Clean end of stream between frames.
    Eof,
    Timeout,
    Fail(Error),
}

impl FrameReader {
    fn new(limits: Limits) -> FrameReader {
        FrameReader { buf: BytesMut::new(), limits }
    }

    async fn fill<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        need: usize,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ReadError> {
        while self.buf.len() < need {
            self.buf.reserve((need - self.buf.len()).max(8192));
            let read = r.read_buf(&mut self.buf);
            let n = match deadline {
                Some(d) => tokio::time::timeout_at(d, read).await.map_err(|_| ReadError::Timeout)?,
                None => read.await,
            }
            .map_err(|e| ReadError::Fail(Error::Io { during: "reading a message", source: e }))?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ReadError::Eof
                } else {
                    ReadError::Fail(Error::Truncated {
                        during: "reading a message",
                        expected: need as u64,
                        received: self.buf.len() as u64,
                    })
                });
            }
        }
        Ok(())
    }

    /// The next frame: its header and its payload (auth + body), which must arrive whole within
    /// `timeout` (a peer trickling bytes cannot hold a connection). Lengths are checked against
    /// the limits before the payload is read.
    async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        timeout: Option<Duration>,
    ) -> std::result::Result<(Header, Bytes), ReadError> {
        let timeout = timeout.map(|t| Instant::now() + t);
        self.fill(r, HEADER_LEN, timeout).await?;
        let header = Header::decode(&self.buf[..HEADER_LEN]).map_err(ReadError::Fail)?;
        self.limits.check(&header).map_err(ReadError::Fail)?;
        let total = HEADER_LEN + header.payload_len();
        self.fill(r, total, timeout).await?;
        let mut frame = self.buf.split_to(total);
        let payload = frame.split_off(HEADER_LEN).freeze();
        if self.buf.is_empty() && self.buf.capacity() > 16 * 1024 {
            // Let go of a large buffer (it is freed with the last message that points into it).
            self.buf = BytesMut::new();
        }
        Ok((header, payload))
    }
}

fn encode(msg: &Message) -> Result<Bytes> {
    let mut v = Vec::with_capacity(HEADER_LEN + 128 + msg.body_len());
    msg.encode_into(&mut v)?;
    Ok(Bytes::from(v))
}

// ------------------------------------------------------------------------------------------------
// Server

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

    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.inner.local)
    }

    pub fn subscribe(&self, conn_id: u64, uri: &[u8]) {
        let Some(conn) = lock(&self.inner.conns).get(&conn_id).cloned() else { return };
        let uri = Bytes::copy_from_slice(uri);
        lock(&conn.subs).insert(uri.clone());
        lock(&self.inner.subs).entry(uri).or_default().insert(conn_id);
    }

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

async fn accept_loop(inner: Arc<ServerInner>, listener: TcpListener) {
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
        let (outbox, rx) = Outbox::new(inner.config.queue_bytes);
        let (kill, kill_rx) = watch::channel(false);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let conn =
            Arc::new(Conn { id, peer, outbox: outbox.clone(), kill, subs: Mutex::new(HashSet::new()) });
        lock(&inner.conns).insert(id, conn.clone());
        let g = task_guard(&inner);
        tokio::spawn(async move {
            let _g = g;
            write_loop(rx, w, outbox.budget, kill_rx).await
        });
        let g = task_guard(&inner);
        let inner2 = inner.clone();
        tokio::spawn(async move {
            let _g = g;
            let _slot = slot;
            read_loop(inner2.clone(), conn.clone(), r).await;
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
                if let Some(rid) = super::wire::AuthFields::decode(&auth_bytes)
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

// ------------------------------------------------------------------------------------------------
// Client

/// Reconnection after a lost connection: delays double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub initial: Duration,
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
    pub limits: Limits,
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

    fn fail_all(&mut self, why: &str) {
        self.by_uri.clear();
        for (_, w) in self.by_id.drain() {
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
        lock(&self.pending).fail_all("the client was closed");
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
            outbox.send(encode(&msg)?).await
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
        lock(&self.inner.pending).take(id);
        result
    }

    /// REQUEST_URI; the reply is RESPOND_URI.
    pub async fn get(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::REQUEST_URI, uri, b"", deadline).await
    }

    pub async fn create(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::CREATE_URI, uri, content, deadline).await
    }

    pub async fn update(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::UPDATE_URI, uri, content, deadline).await
    }

    pub async fn delete(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::DELETE_URI, uri, b"", deadline).await
    }

    pub async fn publish(&self, uri: &[u8], content: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::PUBLISH_URI, uri, content, deadline).await
    }

    /// SUBSCRIBE_URI; afterwards the notifications arrive at handlers or [`Client::recv`].
    pub async fn subscribe(&self, uri: &[u8], deadline: Duration) -> Result<Message> {
        self.request(MessageType::SUBSCRIBE_URI, uri, b"", deadline).await
    }

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

    pub fn route(&self, key: Key, inner: Layers, once: bool, handler: Handler<Client>) {
        self.inner.router.add(key, inner, once, handler);
    }

    /// The next unsolicited message no handler took (`None` once closed).
    pub async fn recv(&self) -> Option<Message> {
        let mut rx = self.inner.inbox_rx.lock().await;
        tokio::select! {
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

/// Starts the writer of a new connection and publishes its outbox; returns the read half.
fn install(inner: &Arc<ClientInner>, stream: TcpStream) -> (OwnedReadHalf, watch::Sender<bool>) {
    let (r, w) = stream.into_split();
    let (outbox, rx) = Outbox::new(inner.config.queue_bytes);
    let (kill, kill_rx) = watch::channel(false);
    tokio::spawn(write_loop(rx, w, outbox.budget.clone(), kill_rx));
    *lock(&inner.outbox) = Some(outbox);
    let _ = inner.connected.send(true);
    (r, kill)
}

/// Runs the reader; on a lost connection fails the requests in flight and reconnects (if asked).
async fn supervise(weak: Weak<ClientInner>, first: (OwnedReadHalf, watch::Sender<bool>)) {
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
        lock(&inner.pending).fail_all(&lost);
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
            let mut p = lock(&inner.pending);
            let waiter = match request_id(&msg) {
                Some(id) => p.take(id),
                None if p.by_id.len() == 1 => {
                    let id = *p.by_id.keys().next().unwrap_or(&0);
                    p.take(id)
                }
                None => None,
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
