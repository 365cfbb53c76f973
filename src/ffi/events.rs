//! `norman_event`: how an asynchronous operation's completion reaches the caller. A client's one
//! callback thread runs the callbacks (completions and progress, in order); completions without a
//! callback wait in the event queue for `norman_client_next_event`.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::boundary::*;
use super::client::norman_client;
use super::request::norman_entity_state;

/// Called once when an asynchronous operation completes, on the client's callback thread.
/// `event` is borrowed for the duration of the call only.
pub type norman_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const norman_event)>;

/// Frees a callback's userdata; called exactly once, after the last callback that receives it.
pub type norman_userdata_free = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Told the bytes sent so far and the total, while a file uploads.
pub type norman_progress_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, sent: u64, total: u64)>;

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

impl norman_event {
    /// The completion of operation `op_id`: its outcome, or its error code and message.
    pub(crate) fn new(
        op_id: u64,
        kind: norman_event_kind,
        result: FfiResult<Outcome>,
        completion: Completion,
    ) -> Box<Self> {
        let (result, message, outcome) = match result {
            Ok(mut outcome) => match outcome.failure.take() {
                Some(e) => (e.code, CString::new(e.message.replace('\0', " ")).ok(), outcome),
                None => (NORMAN_OK, None, outcome),
            },
            Err(e) => (e.code, CString::new(e.message.replace('\0', " ")).ok(), Outcome::default()),
        };
        Box::new(Self {
            op_id,
            kind,
            result,
            message,
            outcome,
            userdata: completion.userdata,
            userdata_free: completion.userdata_free,
        })
    }

    pub(crate) fn result(&self) -> norman_result {
        self.result
    }

    pub(crate) fn kind(&self) -> norman_event_kind {
        self.kind
    }

    pub(crate) fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}

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
    /// `norman_msg_conn_request_async`: the reply (`norman_event_take_msg`), also when the result is
    /// NORMAN_ERROR_MSG_REMOTE.
    NORMAN_EVENT_MSG_REPLY = 5,
}

impl norman_event_kind {
    /// Whether the operation may report progress through the callback thread: its completion must
    /// then follow those reports there (they use its userdata, which freeing the event frees).
    pub(crate) fn reports_progress(self) -> bool {
        self == norman_event_kind::NORMAN_EVENT_PUSH_FILE
    }
}

/// What a finished operation hands back; each kind fills its own fields.
pub(crate) struct Outcome {
    pub status: u16,
    pub body: Vec<u8>,
    pub bytes: u64,
    pub checksum: u64,
    pub state: norman_entity_state,
    /// A message reply, moved out once by `norman_event_take_msg`.
    pub msg: std::sync::Mutex<Option<crate::msg::Message>>,
    /// An error that still hands out `msg` (NORMAN_ERROR_MSG_REMOTE): the event's result.
    pub failure: Option<FfiError>,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            status: 0,
            body: Vec::new(),
            bytes: 0,
            checksum: 0,
            state: norman_entity_state::NORMAN_ENTITY_PENDING,
            msg: std::sync::Mutex::new(None),
            failure: None,
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

pub(crate) enum Dispatch {
    Complete(Box<norman_event>, norman_callback),
    Progress(unsafe extern "C" fn(*mut c_void, u64, u64), UserData, u64, u64),
    /// Work for the callback thread (a message handler's call; a userdata_free after the last
    /// one). Dropped unrun when the client is gone, so its captures must clean up on drop.
    Run(Box<dyn FnOnce() + Send>),
}

/// Completions without a callback, waiting for `norman_client_next_event`.
#[derive(Default)]
pub(crate) struct EventQueue {
    state: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Box<norman_event>>,
    /// Operations started without a callback whose completion is not queued yet.
    awaited: usize,
    /// Set by `norman_client_close`: once nothing is queued or awaited, next_event is CANCELLED.
    closed: bool,
    /// The socket pair behind `norman_client_event_fd`, made on its first call.
    wake: Option<Wake>,
}

impl Queue {
    /// Whether `next_event` would answer at once.
    fn ready(&self) -> bool {
        !self.events.is_empty() || (self.closed && self.awaited == 0)
    }

    /// Keeps the wake-up descriptor readable exactly while `ready()`: called after every change.
    fn sync_wake(&mut self) {
        let ready = self.ready();
        if let Some(wake) = self.wake.as_mut() {
            wake.set(ready);
        }
    }
}

/// A Unix socket pair: one byte waits in it while events do. A socket rather than a pipe: a write
/// can ask not to raise SIGPIPE (the caller may close its end), and event loops that only watch
/// sockets and pipes (libuv, Node) take it.
struct Wake {
    tx: UnixStream,
    rx: UnixStream,
    /// Whether our byte is in the socket (a loop that reads what arrives, as libuv does, may have
    /// taken it: then clearing finds nothing, which is fine).
    signalled: bool,
}

impl Wake {
    fn new() -> std::io::Result<Self> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Self { tx, rx, signalled: false })
    }

    fn set(&mut self, ready: bool) {
        if ready == self.signalled {
            return;
        }
        if ready {
            // A failure (the buffer full of unread bytes) leaves the socket readable anyway.
            // SAFETY: a valid socket and a 1-byte buffer that outlives the call.
            unsafe { libc::send(self.tx.as_raw_fd(), [1u8].as_ptr().cast(), 1, SEND_FLAGS) };
        } else {
            let mut sink = [0u8; 64];
            // SAFETY: a valid non-blocking socket and a buffer of the given length.
            while unsafe { libc::recv(self.rx.as_raw_fd(), sink.as_mut_ptr().cast(), sink.len(), 0) } > 0 {}
        }
        self.signalled = ready;
    }
}

/// Never SIGPIPE (Linux). Elsewhere no flag is needed: our own read end lives as long as the queue,
/// so a write always has a reader.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: c_int = 0;

impl EventQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An operation without a callback started: its completion will come here.
    pub(crate) fn expect(&self) {
        let mut queue = self.lock();
        queue.awaited += 1;
        queue.sync_wake();
    }

    pub(crate) fn push(&self, event: Box<norman_event>) {
        let mut queue = self.lock();
        queue.events.push_back(event);
        queue.awaited = queue.awaited.saturating_sub(1);
        queue.sync_wake();
        self.ready.notify_all();
    }

    /// Wakes every waiter; from now on an empty queue with nothing awaited answers CANCELLED.
    pub(crate) fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        queue.sync_wake();
        self.ready.notify_all();
    }

    /// A new descriptor of the queue's wake-up socket (see `norman_client_event_fd`).
    fn wake_fd(&self) -> std::io::Result<c_int> {
        let mut queue = self.lock();
        let rx = match &queue.wake {
            Some(wake) => wake.rx.try_clone()?,
            None => {
                let wake = Wake::new()?;
                let rx = wake.rx.try_clone()?;
                queue.wake = Some(wake);
                queue.sync_wake();
                rx
            }
        };
        Ok(rx.into_raw_fd())
    }

    /// The next event, waiting up to `timeout` (`None`: forever). After close, events queued or
    /// still on their way (every operation of a closed client completes promptly, as cancelled)
    /// are handed out first; then CANCELLED, at once.
    fn next(&self, timeout: Option<Duration>) -> FfiResult<Box<norman_event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut queue = self.lock();
        loop {
            if let Some(event) = queue.events.pop_front() {
                queue.sync_wake();
                return Ok(event);
            }
            if queue.closed && queue.awaited == 0 {
                return Err(FfiError::new(NORMAN_ERROR_CANCELLED, "the client was closed"));
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(FfiError::new(NORMAN_NO_EVENT, "no event within the timeout")),
                },
            };
            queue = self.ready.wait_timeout(queue, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Every undelivered event (dropping them frees their userdata).
    pub(crate) fn drain(&self) -> VecDeque<Box<norman_event>> {
        std::mem::take(&mut self.lock().events)
    }
}

thread_local! {
    static ON_CALLBACK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn on_callback_thread() -> bool {
    ON_CALLBACK_THREAD.with(|c| c.get())
}

pub(crate) fn dispatcher(rx: mpsc::Receiver<Dispatch>, queue: Arc<EventQueue>) {
    ON_CALLBACK_THREAD.with(|c| c.set(true));
    for dispatch in rx {
        match dispatch {
            Dispatch::Complete(event, Some(cb)) => {
                // SAFETY: the caller registered this callback with this userdata; the event lives
                // until after the call. A C callback cannot unwind into Rust.
                unsafe { cb(event.userdata, &*event) };
                drop(event); // userdata_free, once, after the callback
            }
            Dispatch::Complete(event, None) => queue.push(event),
            // SAFETY: as above; userdata is alive until its operation's completion is freed, which
            // is queued behind this report.
            Dispatch::Progress(cb, userdata, sent, total) => unsafe { cb(userdata.0, sent, total) },
            Dispatch::Run(job) => {
                // A panic in the library's part of a job must not end the callback thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        }
    }
}

/// Waits up to `timeout_ms` milliseconds (0: do not wait; negative: wait forever) for the next
/// completion of an operation started without a callback. Returns NORMAN_NO_EVENT when none came.
/// After `norman_client_close` it still hands out the completions of the client's operations (each
/// ends promptly, as cancelled); once none is left it returns NORMAN_ERROR_CANCELLED at once, and a
/// thread waiting in it, even with a negative timeout, returns then too.
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
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        out.write(Box::into_raw(client.shared().queue.next(timeout)?));
        Ok(())
    })
}

/// Gives a descriptor that is readable exactly while `norman_client_next_event` would answer at once
/// (an event is queued, or the client is closed and no event is left), so that a poll/epoll/kqueue
/// loop or an event loop (libuv, Go's netpoller) can wait for completions of operations started
/// without a callback instead of a thread sitting in `norman_client_next_event`. When it is
/// readable, call `norman_client_next_event` with timeout 0 until it returns NORMAN_NO_EVENT (or
/// NORMAN_ERROR_CANCELLED: closed). There is nothing to read from it; a loop that reads whatever
/// arrives (libuv streams do) is fine as long as it drains the events after every wake-up as said.
/// Completions of operations without a callback reach the queue straight from the runtime, not
/// through the callback thread (except pushes with a progress callback, which follow their reports).
/// After `norman_client_free` the descriptor reports end of file.
///
/// Ownership: `*fd_out` receives a new descriptor (non-blocking, close-on-exec) owned by the caller:
/// close it with close(2), before or after freeing the client. Each call gives another descriptor of
/// the same wake-up; use one.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_event_fd(
    client: *const norman_client,
    fd_out: *mut c_int,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let out = unsafe { Out::new(fd_out, "fd_out") }?;
        let fd =
            client.shared().queue.wake_fd().map_err(|e| {
                FfiError::new(NORMAN_ERROR_IO, format!("cannot make the event descriptor: {e}"))
            })?;
        out.write(fd);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: c_int) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
    }

    /// The code `next` answers with when it has no event.
    fn refusal(r: FfiResult<Box<norman_event>>) -> Option<norman_result> {
        r.err().map(|e| e.code)
    }

    fn event(op_id: u64) -> Box<norman_event> {
        let completion = Completion { callback: None, userdata: std::ptr::null_mut(), userdata_free: None };
        norman_event::new(op_id, norman_event_kind::NORMAN_EVENT_REQUEST, Ok(Outcome::default()), completion)
    }

    #[test]
    fn the_wake_descriptor_is_readable_exactly_while_next_would_answer() {
        let queue = EventQueue::default();
        queue.push(event(1)); // queued before the descriptor exists
        let fd = queue.wake_fd().expect("a descriptor");
        let other = queue.wake_fd().expect("another");
        assert!(readable(fd) && readable(other));
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(1));
        assert!(!readable(fd) && !readable(other));

        queue.expect();
        queue.expect();
        queue.push(event(2));
        queue.push(event(3));
        assert!(readable(fd));
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(2));
        assert!(readable(fd), "one event left");
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(3));
        assert!(!readable(fd));
        assert_eq!(refusal(queue.next(Some(Duration::ZERO))), Some(NORMAN_NO_EVENT));

        // A loop that reads what arrives (libuv) takes the byte; the next event still wakes it.
        queue.push(event(4));
        let mut byte = [0u8; 8];
        // SAFETY: a valid descriptor and buffer.
        assert_eq!(unsafe { libc::read(fd, byte.as_mut_ptr().cast(), byte.len()) }, 1);
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(4));
        queue.push(event(5));
        assert!(readable(fd));
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(5));

        // Closed with an operation still awaited: not yet; once it came and was taken: for good.
        queue.expect();
        queue.close();
        assert!(!readable(fd));
        queue.push(event(6));
        assert_eq!(queue.next(Some(Duration::ZERO)).ok().map(|e| e.op_id), Some(6));
        assert!(readable(fd));
        assert_eq!(refusal(queue.next(Some(Duration::ZERO))), Some(NORMAN_ERROR_CANCELLED));
        assert!(readable(fd));

        // Gone: end of file after what was left.
        drop(queue);
        let mut n;
        loop {
            // SAFETY: as above.
            n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), byte.len()) };
            if n <= 0 {
                break;
            }
        }
        assert_eq!(n, 0);
        // SAFETY: descriptors this test owns, closed once.
        unsafe {
            libc::close(fd);
            libc::close(other);
        }
    }
}
