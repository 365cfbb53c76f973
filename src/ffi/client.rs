//! `norman_client`: the client owns its tokio runtime (worker threads), its HTTP client, the
//! registry of running operations and the one runner behind every call's blocking and `_async`
//! forms; completions go to the callback thread and the event queue (`events`).

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::config::norman_config;
use super::events::{
    dispatcher, norman_event, norman_event_kind, norman_progress_callback, on_callback_thread, Completion,
    Dispatch, EventQueue, Outcome, UserData,
};
use crate::config::AppConfig;
use crate::http::HttpClient;

/// A client (opaque): one runtime, one connection pool, one callback thread.
pub struct norman_client {
    shared: Arc<ClientShared>,
    runtime: Option<tokio::runtime::Runtime>,
    dispatcher: Option<std::thread::JoinHandle<()>>,
}

pub(crate) struct ClientShared {
    pub config: AppConfig,
    /// The HTTP client, or why the configuration cannot make one (a client with a placeholder base
    /// URL still streams uploads on pairings; only HTTP calls fail).
    http: RwLock<Result<HttpClient, String>>,
    pub handle: tokio::runtime::Handle,
    ops: Mutex<HashMap<u64, CancellationToken>>,
    next_op: AtomicU64,
    dispatch: Mutex<Option<mpsc::Sender<Dispatch>>>,
    pub(crate) queue: Arc<EventQueue>,
    /// Cancelled by `norman_client_close` or free: ends every operation, blocking calls included,
    /// and refuses new ones (each operation's own token is a child of it).
    closing: CancellationToken,
}

/// How a call runs: on the calling thread until it is done, or as an operation whose completion is
/// one event (`_async` forms).
pub(crate) enum Mode {
    Blocking,
    Async { kind: norman_event_kind, completion: Completion, op_id_out: *mut u64 },
}

/// Where an operation's progress goes: straight to the caller's callback on the calling thread
/// (blocking calls), or through the callback thread (asynchronous ones).
pub(crate) struct Progress {
    callback: norman_progress_callback,
    userdata: UserData,
    via: Option<Arc<ClientShared>>,
}

impl Progress {
    pub fn report(&self, sent: u64, total: u64) {
        let Some(cb) = self.callback else { return };
        match &self.via {
            Some(shared) => shared.send(Dispatch::Progress(cb, UserData(self.userdata.get()), sent, total)),
            // SAFETY: the caller's callback with the caller's userdata, on the caller's thread.
            None => unsafe { cb(self.userdata.get(), sent, total) },
        }
    }
}

impl ClientShared {
    pub fn http(&self) -> FfiResult<HttpClient> {
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map_err(|message| FfiError::new(NORMAN_ERROR_INVALID_CONFIG, message))
    }

    /// NORMAN_ERROR_CANCELLED once the client is closed.
    pub fn check_open(&self) -> FfiResult {
        if self.closing.is_cancelled() {
            return Err(closed_error());
        }
        Ok(())
    }

    /// Fails when a blocking call would deadlock or stall a runtime.
    pub fn check_blocking_allowed(&self) -> FfiResult {
        if on_callback_thread() {
            return Err(FfiError::new(
                NORMAN_ERROR_WRONG_THREAD,
                "blocking calls are not allowed on the callback thread",
            ));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(FfiError::new(
                NORMAN_ERROR_WRONG_THREAD,
                "blocking calls are not allowed inside a tokio runtime (a runtime worker thread)",
            ));
        }
        self.check_open()
    }

    /// Runs `fut` to completion on the calling thread (the runtime's workers drive the sockets),
    /// stopping early with `NORMAN_ERROR_CANCELLED` when `cancel` fires or the client is closed.
    pub fn block_on<T>(
        &self,
        cancel: Option<&CancellationToken>,
        fut: impl Future<Output = FfiResult<T>>,
    ) -> FfiResult<T> {
        self.check_blocking_allowed()?;
        self.handle.block_on(async {
            let cancelled = async {
                match cancel {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.closing.cancelled() => Err(closed_error()),
                _ = cancelled => Err(FfiError::cancelled()),
                r = fut => r,
            }
        })
    }

    /// Runs one operation in the caller's chosen mode: the one runner behind each call's blocking
    /// and `_async` forms. Blocking: the outcome. Async: the operation id is written to
    /// `op_id_out` (may be NULL) and the outcome comes as an event.
    pub fn run(
        self: &Arc<Self>,
        mode: Mode,
        fut: impl Future<Output = FfiResult<Outcome>> + Send + 'static,
    ) -> FfiResult<Outcome> {
        self.run_with(mode, false, fut)
    }

    /// As [`ClientShared::run`], but an `_async` operation is first polled on the calling thread:
    /// for short operations whose first step only queues work (a message request queues its frame),
    /// this saves waking a runtime worker before anything is sent. Only for futures whose first
    /// poll never does heavy work.
    pub fn run_eager(
        self: &Arc<Self>,
        mode: Mode,
        fut: impl Future<Output = FfiResult<Outcome>> + Send + 'static,
    ) -> FfiResult<Outcome> {
        self.run_with(mode, true, fut)
    }

    fn run_with(
        self: &Arc<Self>,
        mode: Mode,
        eager: bool,
        fut: impl Future<Output = FfiResult<Outcome>> + Send + 'static,
    ) -> FfiResult<Outcome> {
        match mode {
            Mode::Blocking => self.block_on(None, fut),
            Mode::Async { kind, completion, op_id_out } => {
                let op_id = self.spawn_op(kind, completion, eager, fut);
                if !op_id_out.is_null() {
                    // SAFETY: non-NULL and writable by the caller's contract.
                    unsafe { op_id_out.write(op_id) };
                }
                Ok(Outcome::default())
            }
        }
    }

    /// Where progress reports of an operation run in `mode` go.
    pub fn progress_for(
        self: &Arc<Self>,
        mode: &Mode,
        callback: norman_progress_callback,
        userdata: *mut c_void,
    ) -> Progress {
        let via = matches!(mode, Mode::Async { .. }).then(|| self.clone());
        Progress { callback, userdata: UserData(userdata), via }
    }

    /// Starts an asynchronous operation; its completion is delivered exactly once (a cancelled or
    /// dropped operation completes with `NORMAN_ERROR_CANCELLED`). `eager`: see
    /// [`ClientShared::run_eager`].
    fn spawn_op(
        self: &Arc<Self>,
        kind: norman_event_kind,
        completion: Completion,
        eager: bool,
        fut: impl Future<Output = FfiResult<Outcome>> + Send + 'static,
    ) -> u64 {
        let op_id = self.next_op.fetch_add(1, Ordering::Relaxed);
        if completion.callback.is_none() {
            self.queue.expect();
        }
        let token = self.closing.child_token();
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).insert(op_id, token.clone());
        let guard =
            OpGuard { shared: self.clone(), op_id, kind, token: token.clone(), completion: Some(completion) };
        log::debug!(target: "norman::ffi", "operation {op_id} ({kind:?}) started");
        if token.is_cancelled() {
            drop(guard); // the client is closed: completes as cancelled
            return op_id;
        }
        let task = Box::pin(async move {
            let mut guard = guard;
            let result = tokio::select! {
                biased;
                _ = token.cancelled() => Err(FfiError::cancelled()),
                r = fut => r,
            };
            guard.complete(result);
        });
        if eager {
            // Polled inside other tasks' wake-ups: their cooperative budget must not apply.
            Launch::start(&self.handle, Box::pin(tokio::task::unconstrained(task)));
        } else {
            self.handle.spawn(task);
        }
        op_id
    }

    /// Hands `dispatch` to the callback thread (dropped there unrun once the client is freed).
    pub(crate) fn send(&self, dispatch: Dispatch) {
        let sender = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = sender.as_ref() {
            // A closed channel drops the dispatch, which still frees its userdata.
            let _ = tx.send(dispatch);
        }
    }

    fn cancel(&self, op_id: u64) -> bool {
        let token = self.ops.lock().unwrap_or_else(|e| e.into_inner()).get(&op_id).cloned();
        // Cancelled after the lock is released: the wake-up may complete the operation on this
        // very thread (an eager one), which takes the lock again.
        match token {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// An eager operation's task (`run_eager`). It is polled first on the calling thread, then by the
/// wake-ups themselves: when its reply arrives (or its deadline passes, or a cancel comes), the
/// waker polls it right there, so the completion is queued by the thread that got the reply,
/// without a runtime task to schedule and wake in between. That halves a request's hand-offs.
/// A wake that comes while it is being polled hands it to the runtime instead (no loops, no
/// recursion). So the code that wakes these futures must not hold a lock that they take: the
/// message client's waiters are told after its `pending` lock is released.
struct Launch {
    handle: tokio::runtime::Handle,
    state: Mutex<LaunchState>,
}

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

enum LaunchState {
    /// Being polled; `woken`: a wake came meanwhile.
    Polling { woken: bool },
    /// Waiting for a wake. Dropped with every waker gone, it completes as cancelled (its OpGuard).
    Parked(Task),
    /// Finished, or handed to the runtime (which polls it with its own waker from then on).
    Gone,
}

impl Launch {
    fn start(handle: &tokio::runtime::Handle, task: Task) {
        let launch = Arc::new(Launch {
            handle: handle.clone(),
            state: Mutex::new(LaunchState::Polling { woken: false }),
        });
        launch.run(task);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaunchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls `task` once on this thread (the state is `Polling`), then parks it, or hands it to
    /// the runtime when it was woken meanwhile.
    fn run(self: &Arc<Self>, mut task: Task) {
        let waker = std::task::Waker::from(self.clone());
        let polled = {
            let _runtime = self.handle.enter(); // timers and sockets register with this runtime
            let mut cx = std::task::Context::from_waker(&waker);
            // A panic would otherwise unwind through whoever woke us (a connection's reader).
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.as_mut().poll(&mut cx)))
        };
        let mut state = self.lock();
        match polled {
            // Finished, or panicked: dropping the task completes its operation (as cancelled).
            Ok(std::task::Poll::Ready(())) | Err(_) => *state = LaunchState::Gone,
            Ok(std::task::Poll::Pending) => {
                if matches!(*state, LaunchState::Polling { woken: true }) {
                    *state = LaunchState::Gone;
                    drop(state);
                    self.handle.spawn(task);
                } else {
                    *state = LaunchState::Parked(task);
                }
            }
        }
    }
}

impl std::task::Wake for Launch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, LaunchState::Gone) {
            LaunchState::Polling { .. } => *state = LaunchState::Polling { woken: true },
            LaunchState::Parked(task) => {
                *state = LaunchState::Polling { woken: false };
                drop(state);
                self.run(task);
            }
            LaunchState::Gone => {}
        }
    }
}

struct OpGuard {
    shared: Arc<ClientShared>,
    op_id: u64,
    kind: norman_event_kind,
    token: CancellationToken,
    completion: Option<Completion>,
}

impl OpGuard {
    fn complete(&mut self, result: FfiResult<Outcome>) {
        let Some(completion) = self.completion.take() else { return };
        // An error that arrives after cancel was asked for is the cancel's doing (freeing a client
        // drops connections that a request may notice before its cancel token): report CANCELLED.
        let result = match result {
            Err(_) if self.token.is_cancelled() => Err(FfiError::cancelled()),
            other => other,
        };
        self.shared.ops.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.op_id);
        let callback = completion.callback;
        let event = norman_event::new(self.op_id, self.kind, result, completion);
        log::debug!(target: "norman::ffi", "operation {} completed: {:?}", self.op_id, event.result());
        if callback.is_none() && !self.kind.reports_progress() {
            // Nothing runs on the callback thread for it: queue it now, one thread hop fewer.
            self.shared.queue.push(event);
        } else {
            self.shared.send(Dispatch::Complete(event, callback));
        }
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        // A task dropped by a runtime shutting down still completes, once, as cancelled.
        self.complete(Err(FfiError::cancelled()));
    }
}

impl norman_client {
    pub(crate) fn shared(&self) -> &Arc<ClientShared> {
        &self.shared
    }

    fn new(config: &norman_config) -> FfiResult<Self> {
        config.validate()?;
        let http = HttpClient::new(&config.app)
            .map(|http| match &config.token {
                Some(token) => http.with_token(token.expose().clone()),
                None => http,
            })
            .map_err(|e| e.to_string());
        let workers = match config.worker_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()).min(8),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("norman-worker")
            .enable_all()
            .build()
            .map_err(|e| FfiError::new(NORMAN_ERROR_INTERNAL, format!("cannot start the runtime: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let queue = Arc::new(EventQueue::default());
        let dispatcher_queue = queue.clone();
        let dispatcher = std::thread::Builder::new()
            .name("norman-callbacks".into())
            .spawn(move || dispatcher(rx, dispatcher_queue))
            .map_err(|e| {
                FfiError::new(NORMAN_ERROR_INTERNAL, format!("cannot start the callback thread: {e}"))
            })?;
        let shared = Arc::new(ClientShared {
            config: config.app.clone(),
            http: RwLock::new(http),
            handle: runtime.handle().clone(),
            ops: Mutex::new(HashMap::new()),
            next_op: AtomicU64::new(1),
            dispatch: Mutex::new(Some(tx)),
            queue,
            closing: CancellationToken::new(),
        });
        Ok(Self { shared, runtime: Some(runtime), dispatcher: Some(dispatcher) })
    }
}

impl Drop for norman_client {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.closing.cancel(); // and with it every operation's token
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Inside some runtime a blocking shutdown would panic; let it wind down on its own.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(5));
            }
        }
        // Every task is gone, so every completion is in the channel: close it and let the callback
        // thread deliver them.
        shared.dispatch.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.dispatcher.take() {
            if !on_callback_thread() {
                let _ = thread.join();
            }
        }
        // Undelivered polled events: dropping them frees their userdata.
        drop(shared.queue.drain());
        log::debug!(target: "norman::ffi", "client freed");
    }
}

/// Creates a client: validates the configuration, starts the runtime (worker threads) and the
/// callback thread. Returns NORMAN_ERROR_INVALID_CONFIG for a bad timeout, chunk or flush size. A
/// base URL that is not an http(s) URL (such as the default placeholder) still makes a client for
/// uploads on pairings; its HTTP calls then return NORMAN_ERROR_INVALID_CONFIG.
///
/// Ownership: `config` is borrowed (copied; free it whenever you like); `*client_out` receives a new
/// handle, free it with `norman_client_free`.
/// Threads: any thread except a runtime worker. The client may be used from many threads at once.
#[no_mangle]
pub unsafe extern "C" fn norman_client_new(
    config: *const norman_config,
    client_out: *mut *mut norman_client,
) -> norman_result {
    guard(|| {
        super::log::install_default_logger();
        // SAFETY: NULL checked; validity is the caller's contract.
        let config = unsafe { arg(config, "config") }?;
        let out = unsafe { Out::new(client_out, "client_out") }?;
        let client = norman_client::new(config)?;
        log::debug!(target: "norman::ffi", "client created for {}", client.shared.config.base_url);
        out.write(into_handle(client));
        Ok(())
    })
}

/// Frees a client: cancels every running operation (each completes once, with
/// NORMAN_ERROR_CANCELLED, on the callback thread), stops the runtime (waiting up to 5 s for its
/// threads), delivers the remaining callbacks, frees undelivered events and their userdata.
/// Free uploads and downloads of this client first. NULL is a no-op.
///
/// Ownership: consumes `client`. Threads: any thread, including the callback thread (then the
/// remaining callbacks run after the current one returns); not concurrently with other calls on it.
#[no_mangle]
pub unsafe extern "C" fn norman_client_free(client: *mut norman_client) {
    // SAFETY: the pointer came from norman_client_new and is not used again.
    guard_value((), || drop(unsafe { take_handle(client) }))
}

/// Replaces the bearer token of the client (NULL or "" removes it); operations already running keep
/// the one they started with. NORMAN_ERROR_CANCELLED after `norman_client_close`.
///
/// Ownership: `token` is borrowed and copied. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_set_token(
    client: *const norman_client,
    token: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let token = unsafe { opt_str(token, "token") }?;
        client.shared.check_open()?;
        let mut slot = client.shared.http.write().unwrap_or_else(|e| e.into_inner());
        let http = slot.as_ref().map_err(|m| FfiError::new(NORMAN_ERROR_INVALID_CONFIG, m.clone()))?;
        *slot = Ok(match token.filter(|t| !t.is_empty()) {
            Some(t) => http.with_token(t),
            None => http.without_token(),
        });
        Ok(())
    })
}

/// Closes a client without freeing it: every running operation ends with NORMAN_ERROR_CANCELLED,
/// blocking calls in other threads included (an upload being written, a download being read, an
/// open waiting on the server), and every later call on the client or its uploads and downloads
/// returns NORMAN_ERROR_CANCELLED (an `_async` call still returns NORMAN_OK and its operation
/// completes at once as cancelled; `norman_client_next_event` hands out such completions first, see
/// there). A thread waiting in `norman_client_next_event` is released. Lets a host end the calls
/// other threads are blocked in before it frees the client. Closing twice is fine.
///
/// Ownership: nothing is transferred; the handle still needs `norman_client_free`.
/// Threads: any thread, including the callback thread, concurrently with other calls on the client.
#[no_mangle]
pub unsafe extern "C" fn norman_client_close(client: *const norman_client) -> norman_result {
    guard(|| {
        // SAFETY: NULL or a live handle (checked by arg).
        let client = unsafe { arg(client, "client") }?;
        client.shared.closing.cancel();
        client.shared.queue.close();
        log::debug!(target: "norman::ffi", "client closed");
        Ok(())
    })
}

fn closed_error() -> FfiError {
    FfiError::new(NORMAN_ERROR_CANCELLED, "the client was closed")
}

/// Cancels an asynchronous operation. It completes once with NORMAN_ERROR_CANCELLED, unless it had
/// already completed. Returns NORMAN_ERROR_INVALID_ARGUMENT for an unknown or completed operation.
///
/// Ownership: nothing is transferred. Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_cancel(client: *const norman_client, op_id: u64) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        if client.shared.cancel(op_id) {
            Ok(())
        } else {
            Err(FfiError::invalid(format!("no running operation {op_id}")))
        }
    })
}

/// Runs the start of an asynchronous call: on failure before the operation exists, the userdata is
/// still freed (exactly once) so a caller never leaks it.
pub(crate) fn start(completion: Completion, body: impl FnOnce(Completion) -> FfiResult) -> norman_result {
    let free = (completion.userdata_free, UserData(completion.userdata));
    let result = guard(|| body(completion));
    if result != NORMAN_OK {
        // The operation was never spawned (`body` spawns last): free the userdata here.
        if let (Some(f), data) = free {
            // SAFETY: the caller's free function for its own pointer; the op did not take it.
            unsafe { f(data.get()) };
        }
    }
    result
}
