//! `norman_config` and `norman_client`: the client owns its tokio runtime, its HTTP client, its
//! callback thread and the queue of completed asynchronous operations (`norman_event`).

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_void, CString};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::request::norman_entity_state;
use crate::config::AppConfig;
use crate::http::HttpClient;
use crate::sensitive::Sensitive;

/// Called once when an asynchronous operation completes, on the client's callback thread.
/// `event` is borrowed for the duration of the call only.
pub type norman_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const norman_event)>;

/// Frees a callback's userdata; called exactly once, after the last callback that receives it.
pub type norman_userdata_free = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Told the bytes sent so far and the total, while a file uploads.
pub type norman_progress_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, sent: u64, total: u64)>;

/// Configuration of a client (opaque). Created with `norman_config_new` or `norman_config_from_env`.
pub struct norman_config {
    app: AppConfig,
    token: Option<Sensitive<String>>,
    worker_threads: usize,
}

/// A client (opaque): one runtime, one connection pool, one callback thread.
pub struct norman_client {
    shared: Arc<ClientShared>,
    runtime: Option<tokio::runtime::Runtime>,
    dispatcher: Option<std::thread::JoinHandle<()>>,
}

/// What an asynchronous operation produced (opaque). Read it with the `norman_event_*` getters.
pub struct norman_event {
    op_id: u64,
    kind: norman_event_kind,
    result: norman_result,
    message: Option<CString>,
    outcome: Outcome,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
}

// SAFETY: the userdata pointer is opaque to the library; the header tells callers it is handed to
// the callback thread (or to the thread that polls the event).
unsafe impl Send for norman_event {}

impl Drop for norman_event {
    fn drop(&mut self) {
        if let Some(free) = self.userdata_free.take() {
            // SAFETY: the caller gave us this function for this pointer; called exactly once here.
            let _ = std::panic::catch_unwind(|| unsafe { free(self.userdata) });
        }
    }
}

/// Which operation an event completes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum norman_event_kind {
    /// `norman_client_request_async`: status and body.
    NORMAN_EVENT_REQUEST = 1,
    /// `norman_client_push_file_async`: bytes and checksum.
    NORMAN_EVENT_PUSH_FILE = 2,
    /// `norman_client_retrieve_file_async`: bytes and checksum of the written file.
    NORMAN_EVENT_RETRIEVE_FILE = 3,
    /// `norman_client_entity_state_async`: the entity state.
    NORMAN_EVENT_ENTITY_STATE = 4,
}

/// What a finished operation hands back; each kind fills its own fields.
pub(crate) struct Outcome {
    pub status: u16,
    pub body: Vec<u8>,
    pub bytes: u64,
    pub checksum: u64,
    pub state: norman_entity_state,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            status: 0,
            body: Vec::new(),
            bytes: 0,
            checksum: 0,
            state: norman_entity_state::NORMAN_ENTITY_PENDING,
        }
    }
}

pub(crate) struct Completion {
    pub callback: norman_callback,
    pub userdata: *mut c_void,
    pub userdata_free: norman_userdata_free,
}

// SAFETY: see `norman_event`.
unsafe impl Send for Completion {}

pub(crate) struct UserData(pub *mut c_void);
// SAFETY: see `norman_event`.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so closures capture the whole Send wrapper, not the raw field).
    pub fn get(&self) -> *mut c_void {
        self.0
    }
}

enum Dispatch {
    Complete(Box<norman_event>, norman_callback),
    Progress(unsafe extern "C" fn(*mut c_void, u64, u64), UserData, u64, u64),
}

struct EventQueue {
    events: Mutex<VecDeque<Box<norman_event>>>,
    ready: Condvar,
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
    queue: Arc<EventQueue>,
    /// Cancelled by `norman_client_close` or free: ends every operation, blocking calls included,
    /// and refuses new ones (each operation's own token is a child of it).
    closing: CancellationToken,
}

thread_local! {
    static ON_CALLBACK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn on_callback_thread() -> bool {
    ON_CALLBACK_THREAD.with(|c| c.get())
}

impl ClientShared {
    pub fn http(&self) -> FfiResult<HttpClient> {
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .map_err(|message| FfiError::new(NORMAN_ERROR_INVALID_CONFIG, message))
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
        if self.closing.is_cancelled() {
            return Err(closed_error());
        }
        Ok(())
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

    /// Starts an asynchronous operation; its completion is delivered exactly once (a cancelled or
    /// dropped operation completes with `NORMAN_ERROR_CANCELLED`).
    pub fn spawn_op(
        self: &Arc<Self>,
        kind: norman_event_kind,
        completion: Completion,
        fut: impl Future<Output = FfiResult<Outcome>> + Send + 'static,
    ) -> u64 {
        let op_id = self.next_op.fetch_add(1, Ordering::Relaxed);
        let token = self.closing.child_token();
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).insert(op_id, token.clone());
        let guard =
            OpGuard { shared: self.clone(), op_id, kind, token: token.clone(), completion: Some(completion) };
        log::debug!(target: "norman::ffi", "operation {op_id} ({kind:?}) started");
        if token.is_cancelled() {
            drop(guard); // the client is closed: completes as cancelled
            return op_id;
        }
        self.handle.spawn(async move {
            let mut guard = guard;
            let result = tokio::select! {
                biased;
                _ = token.cancelled() => Err(FfiError::cancelled()),
                r = fut => r,
            };
            guard.complete(result);
        });
        op_id
    }

    /// Sends a progress report to the callback thread.
    pub fn progress(&self, callback: norman_progress_callback, userdata: *mut c_void, sent: u64, total: u64) {
        if let Some(cb) = callback {
            self.send(Dispatch::Progress(cb, UserData(userdata), sent, total));
        }
    }

    fn send(&self, dispatch: Dispatch) {
        let sender = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = sender.as_ref() {
            // A closed channel drops the dispatch, which still frees its userdata.
            let _ = tx.send(dispatch);
        }
    }

    fn cancel(&self, op_id: u64) -> bool {
        match self.ops.lock().unwrap_or_else(|e| e.into_inner()).get(&op_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
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
        let (code, message, outcome) = match result {
            Ok(outcome) => (NORMAN_OK, None, outcome),
            Err(e) => (e.code, CString::new(e.message.replace('\0', " ")).ok(), Outcome::default()),
        };
        log::debug!(target: "norman::ffi", "operation {} completed: {code:?}", self.op_id);
        let event = Box::new(norman_event {
            op_id: self.op_id,
            kind: self.kind,
            result: code,
            message,
            outcome,
            userdata: completion.userdata,
            userdata_free: completion.userdata_free,
        });
        self.shared.send(Dispatch::Complete(event, completion.callback));
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        // A task dropped by a runtime shutting down still completes, once, as cancelled.
        self.complete(Err(FfiError::cancelled()));
    }
}

fn dispatcher(rx: mpsc::Receiver<Dispatch>, queue: Arc<EventQueue>) {
    ON_CALLBACK_THREAD.with(|c| c.set(true));
    for dispatch in rx {
        match dispatch {
            Dispatch::Complete(event, Some(cb)) => {
                // SAFETY: the caller registered this callback with this userdata; the event lives
                // until after the call. A C callback cannot unwind into Rust.
                unsafe { cb(event.userdata, &*event) };
                drop(event); // userdata_free, once, after the callback
            }
            Dispatch::Complete(event, None) => {
                queue.events.lock().unwrap_or_else(|e| e.into_inner()).push_back(event);
                queue.ready.notify_all();
            }
            // SAFETY: as above; userdata is alive until its operation's completion is freed, which
            // is queued behind this report.
            Dispatch::Progress(cb, userdata, sent, total) => unsafe { cb(userdata.0, sent, total) },
        }
    }
}

impl norman_client {
    pub(crate) fn shared(&self) -> &Arc<ClientShared> {
        &self.shared
    }

    fn new(config: &norman_config) -> FfiResult<Self> {
        config.app.validate()?;
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
        let queue = Arc::new(EventQueue { events: Mutex::new(VecDeque::new()), ready: Condvar::new() });
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
        let pending: Vec<_> =
            shared.queue.events.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        drop(pending);
        log::debug!(target: "norman::ffi", "client freed");
    }
}

/// Creates a configuration with the defaults of the Python SDK (base URL placeholder, 10 s timeout,
/// 64 KiB chunks, 8 MiB flush size, 3 retries, no token, one worker thread per core up to 8).
///
/// Ownership: `*config_out` receives a new handle; free it with `norman_config_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_config_new(config_out: *mut *mut norman_config) -> norman_result {
    guard(|| {
        // SAFETY: checked for NULL; the caller provides writable storage.
        let out = unsafe { Out::new(config_out, "config_out") }?;
        out.write(into_handle(norman_config { app: AppConfig::default(), token: None, worker_threads: 0 }));
        Ok(())
    })
}

/// Creates a configuration from the defaults overlaid with `NORMAN_BASE_URL`, `NORMAN_TIMEOUT_SECS`,
/// `NORMAN_CHUNK_SIZE`, `NORMAN_FLUSH_SIZE`, `NORMAN_RETRIES` and, when set, `NORMAN_TOKEN`.
/// Returns NORMAN_ERROR_INVALID_CONFIG naming the bad variable.
///
/// Ownership: `*config_out` receives a new handle; free it with `norman_config_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_config_from_env(config_out: *mut *mut norman_config) -> norman_result {
    guard(|| {
        // SAFETY: as in norman_config_new.
        let out = unsafe { Out::new(config_out, "config_out") }?;
        let app = AppConfig::from_env()?;
        let token = std::env::var("NORMAN_TOKEN").ok().filter(|t| !t.is_empty()).map(Sensitive::new);
        out.write(into_handle(norman_config { app, token, worker_threads: 0 }));
        Ok(())
    })
}

/// Frees a configuration. NULL is a no-op.
///
/// Ownership: consumes `config`. Threads: any thread, once.
#[no_mangle]
pub unsafe extern "C" fn norman_config_free(config: *mut norman_config) {
    // SAFETY: the pointer came from norman_config_new/_from_env and is not used again.
    guard_value((), || drop(unsafe { take_handle(config) }))
}

/// Sets the API base URL (ending in the version, e.g. `http://127.0.0.1:8080/v0/`). Checked when
/// the client is created.
///
/// Ownership: `base_url` is borrowed and copied. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_base_url(
    config: *mut norman_config,
    base_url: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: handle and string validity are the caller's contract; NULL is checked.
        let config = unsafe { arg_mut(config, "config") }?;
        config.app.base_url = unsafe { arg_str(base_url, "base_url") }?.to_owned();
        Ok(())
    })
}

/// Sets the bearer token sent with every request; NULL or "" removes it. The token is kept as a
/// secret: never logged, never in an error message, wiped from memory when freed.
///
/// Ownership: `token` is borrowed and copied. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_token(
    config: *mut norman_config,
    token: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        let token = unsafe { opt_str(token, "token") }?;
        config.token = token.filter(|t| !t.is_empty()).map(|t| Sensitive::new(t.to_owned()));
        Ok(())
    })
}

/// Sets the timeout of one HTTP request, of a TCP connect and of any socket wait without progress.
/// 0 is NORMAN_ERROR_INVALID_CONFIG.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_timeout_ms(
    config: *mut norman_config,
    timeout_ms: u64,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        if timeout_ms == 0 {
            return Err(FfiError::new(NORMAN_ERROR_INVALID_CONFIG, "timeout must be greater than zero"));
        }
        config.app.timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// Sets the number of retries of idempotent requests (connect errors, 502/503/504).
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_retries(
    config: *mut norman_config,
    retries: u32,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.app.retries = retries;
        Ok(())
    })
}

/// Sets the upload chunk size (unit of hash + encrypt + socket write, 1 byte to 64 MiB). Checked
/// with the flush size when the client is created.
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_chunk_size(
    config: *mut norman_config,
    chunk_size: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.app.chunk_size = chunk_size;
        Ok(())
    })
}

/// Sets the flush size (most bytes queued ahead of the socket; at least the chunk size).
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_flush_size(
    config: *mut norman_config,
    flush_size: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        unsafe { arg_mut(config, "config") }?.app.flush_size = flush_size;
        Ok(())
    })
}

/// Sets the number of runtime worker threads of a client (0: one per core, at most 8).
///
/// Ownership: nothing is transferred. Threads: not concurrently with other uses of `config`.
#[no_mangle]
pub unsafe extern "C" fn norman_config_set_worker_threads(
    config: *mut norman_config,
    threads: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let config = unsafe { arg_mut(config, "config") }?;
        if threads > 1024 {
            return Err(FfiError::new(NORMAN_ERROR_INVALID_CONFIG, "at most 1024 worker threads"));
        }
        config.worker_threads = threads;
        Ok(())
    })
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
/// the one they started with.
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
/// returns NORMAN_ERROR_CANCELLED. Lets a host end the calls other threads are blocked in before it
/// frees the client. Closing twice is fine.
///
/// Ownership: nothing is transferred; the handle still needs `norman_client_free`.
/// Threads: any thread, including the callback thread, concurrently with other calls on the client.
#[no_mangle]
pub unsafe extern "C" fn norman_client_close(client: *const norman_client) -> norman_result {
    guard(|| {
        // SAFETY: NULL or a live handle (checked by arg).
        let client = unsafe { arg(client, "client") }?;
        client.shared.closing.cancel();
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

/// Waits up to `timeout_ms` milliseconds (0: do not wait; negative: wait forever) for the next
/// completion of an operation started without a callback. Returns NORMAN_NO_EVENT when none came.
///
/// Ownership: `*event_out` receives an event owned by the caller: free it with `norman_event_free`
/// (which also calls the operation's userdata_free).
/// Threads: any thread; with a non-zero timeout not the callback thread (NORMAN_ERROR_WRONG_THREAD).
#[no_mangle]
pub unsafe extern "C" fn norman_client_next_event(
    client: *const norman_client,
    timeout_ms: i32,
    event_out: *mut *mut norman_event,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let out = unsafe { Out::new(event_out, "event_out") }?;
        if timeout_ms != 0 && on_callback_thread() {
            return Err(FfiError::new(
                NORMAN_ERROR_WRONG_THREAD,
                "next_event must not wait on the callback thread",
            ));
        }
        let queue = &client.shared.queue;
        let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        let mut events = queue.events.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(event) = events.pop_front() {
                out.write(Box::into_raw(event));
                return Ok(());
            }
            let wait = match (timeout_ms, deadline) {
                (0, _) => return Err(FfiError::new(NORMAN_NO_EVENT, "no event")),
                (_, None) => Duration::from_secs(3600),
                (_, Some(deadline)) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(FfiError::new(NORMAN_NO_EVENT, "no event within the timeout")),
                },
            };
            events = queue.ready.wait_timeout(events, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    })
}

/// Frees an event obtained from `norman_client_next_event` and calls its userdata_free. NULL is a
/// no-op. Never call it on the event a callback receives (that one is borrowed).
///
/// Ownership: consumes `event`. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_event_free(event: *mut norman_event) {
    // SAFETY: the pointer came from norman_client_next_event and is not used again.
    guard_value((), || drop(unsafe { take_handle(event) }))
}

/// Id of the operation the event completes (as returned by the `_async` call); 0 for NULL.
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_op_id(event: *const norman_event) -> u64 {
    // SAFETY: NULL or a live event.
    guard_value(0, || unsafe { event.as_ref() }.map_or(0, |e| e.op_id))
}

/// Kind of the operation; NORMAN_EVENT_REQUEST for NULL.
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_kind_of(event: *const norman_event) -> norman_event_kind {
    // SAFETY: NULL or a live event.
    guard_value(norman_event_kind::NORMAN_EVENT_REQUEST, || {
        unsafe { event.as_ref() }.map_or(norman_event_kind::NORMAN_EVENT_REQUEST, |e| e.kind)
    })
}

/// Result of the operation (NORMAN_OK, NORMAN_ERROR_CANCELLED, ...); NORMAN_ERROR_NULL_ARGUMENT for NULL.
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_result(event: *const norman_event) -> norman_result {
    // SAFETY: NULL or a live event.
    guard_value(NORMAN_ERROR_PANIC, || {
        unsafe { event.as_ref() }.map_or(NORMAN_ERROR_NULL_ARGUMENT, |e| e.result)
    })
}

/// Error message of a failed operation (UTF-8, NUL-terminated, no secrets), or NULL on success.
///
/// Ownership: borrowed from the event; valid until the event is freed (or the callback returns).
/// Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_message(event: *const norman_event) -> *const c_char {
    // SAFETY: NULL or a live event.
    guard_value(std::ptr::null(), || {
        unsafe { event.as_ref() }.and_then(|e| e.message.as_ref()).map_or(std::ptr::null(), |m| m.as_ptr())
    })
}

/// The userdata given when the operation started.
///
/// Ownership: the pointer is the caller's own; the library frees it only through userdata_free.
/// Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_userdata(event: *const norman_event) -> *mut c_void {
    // SAFETY: NULL or a live event.
    guard_value(std::ptr::null_mut(), || {
        unsafe { event.as_ref() }.map_or(std::ptr::null_mut(), |e| e.userdata)
    })
}

/// HTTP status of a NORMAN_EVENT_REQUEST (0 otherwise).
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_http_status(event: *const norman_event) -> u16 {
    // SAFETY: NULL or a live event.
    guard_value(0, || unsafe { event.as_ref() }.map_or(0, |e| e.outcome.status))
}

/// Body of a NORMAN_EVENT_REQUEST: `*body_out` and `*len_out` receive a pointer and length (a
/// zero-length body gives a non-NULL pointer and 0). Not NUL-terminated.
///
/// Ownership: the body is borrowed from the event, valid until the event is freed (or the callback
/// returns). Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_body(
    event: *const norman_event,
    body_out: *mut *const u8,
    len_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let event = unsafe { arg(event, "event") }?;
        let body = unsafe { Out::new(body_out, "body_out") }?;
        let len = unsafe { Out::new(len_out, "len_out") }?;
        body.write(event.outcome.body.as_ptr());
        len.write(event.outcome.body.len());
        Ok(())
    })
}

/// Bytes moved by a NORMAN_EVENT_PUSH_FILE or NORMAN_EVENT_RETRIEVE_FILE (0 otherwise).
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_bytes(event: *const norman_event) -> u64 {
    // SAFETY: NULL or a live event.
    guard_value(0, || unsafe { event.as_ref() }.map_or(0, |e| e.outcome.bytes))
}

/// xxh3-64 checksum of the bytes of a NORMAN_EVENT_PUSH_FILE or NORMAN_EVENT_RETRIEVE_FILE (0 otherwise).
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_checksum(event: *const norman_event) -> u64 {
    // SAFETY: NULL or a live event.
    guard_value(0, || unsafe { event.as_ref() }.map_or(0, |e| e.outcome.checksum))
}

/// Entity state of a NORMAN_EVENT_ENTITY_STATE (NORMAN_ENTITY_PENDING otherwise).
///
/// Ownership: `event` is borrowed. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_entity_state(event: *const norman_event) -> norman_entity_state {
    // SAFETY: NULL or a live event.
    guard_value(norman_entity_state::NORMAN_ENTITY_PENDING, || {
        unsafe { event.as_ref() }.map_or(norman_entity_state::NORMAN_ENTITY_PENDING, |e| e.outcome.state)
    })
}
