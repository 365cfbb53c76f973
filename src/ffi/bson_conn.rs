//! BSON frames over TCP from C: `norman_bson_conn` (one document per frame, as py-bson's
//! `sendobj`/`recvobj`) and `norman_bson_listener`. Blocking calls run on the client's runtime
//! (`ClientShared::block_on`); a receive and a send may run at once from two threads (the read and
//! write halves have their own locks), and `norman_bson_conn_close` releases both.

use std::ffi::c_char;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::boundary::*;
use super::bson::{bson_error, json_document, limits, norman_bson_doc};
use super::client::{norman_client, ClientShared};
use crate::bson_frame::{read_exact_into, Dialect, Exact, FrameReader, FrameWriter, Limits, RawDocument};
use crate::error::Error;

/// A BSON connection (opaque): from `norman_bson_connect` or `norman_bson_accept`.
pub struct norman_bson_conn {
    shared: Arc<ClientShared>,
    io: Arc<Io>,
    closed: CancellationToken,
    /// Checks documents before anything is sent (standard BSON, the connection's limits).
    checker: FrameWriter,
}

/// The socket's halves; `None` once the connection is closed (dropping them closes the socket).
struct Io {
    read: Mutex<Option<ReadSide>>,
    write: Mutex<Option<WriteSide>>,
}

struct ReadSide {
    stream: BufReader<OwnedReadHalf>,
    frames: FrameReader,
    /// An exact read stopped part way, or a frame was truncated or mis-sized: the stream is out of
    /// step for good.
    cut: bool,
}

struct WriteSide {
    stream: OwnedWriteHalf,
    /// A send stopped part way (I/O error, interrupted): the peer would misread what follows.
    cut: bool,
}

/// A BSON listener (opaque): from `norman_bson_listen`.
pub struct norman_bson_listener {
    shared: Arc<ClientShared>,
    listener: TcpListener,
    limits: Limits,
}

fn timeout_of(timeout_ms: i32) -> Option<Duration> {
    u64::try_from(timeout_ms).ok().map(Duration::from_millis)
}

fn closed() -> FfiError {
    FfiError::new(NORMAN_CLOSED, "the BSON connection is closed")
}

fn no_event(what: &str) -> FfiError {
    FfiError::new(NORMAN_NO_EVENT, format!("no {what} within the timeout"))
}

/// An I/O error of a send: the peer gone is NORMAN_CLOSED, the rest NORMAN_ERROR_IO.
fn send_error(e: std::io::Error) -> FfiError {
    use std::io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected => {
            FfiError::new(NORMAN_CLOSED, format!("the peer closed the connection: {e}"))
        }
        _ => FfiError::from(Error::Io { during: "sending a BSON document", source: e }),
    }
}

/// `addr` as HOST:PORT, or NORMAN_ERROR_INVALID_ARGUMENT.
fn host_port<'a>(addr: *const c_char) -> FfiResult<&'a str> {
    // SAFETY: NULL checked by arg_str; NUL-terminated by the caller's contract.
    let addr = unsafe { arg_str(addr, "addr") }?;
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(addr),
        _ => Err(FfiError::invalid(format!("`addr` {addr:?} is not HOST:PORT"))),
    }
}

impl norman_bson_conn {
    fn new(shared: Arc<ClientShared>, stream: TcpStream, limits: Limits) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let read = ReadSide {
            stream: BufReader::with_capacity(64 * 1024, read),
            frames: FrameReader::new(limits),
            cut: false,
        };
        let write = WriteSide { stream: write, cut: false };
        let io = Io { read: Mutex::new(Some(read)), write: Mutex::new(Some(write)) };
        norman_bson_conn {
            shared,
            io: Arc::new(io),
            closed: CancellationToken::new(),
            checker: FrameWriter::new(limits, Dialect::Standard),
        }
    }

    /// Runs `fut` on the calling thread; `norman_bson_conn_close` ends it with NORMAN_CLOSED.
    fn block_on<T>(&self, fut: impl Future<Output = FfiResult<T>>) -> FfiResult<T> {
        let token = &self.closed;
        self.shared.block_on(None, async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => Err(closed()),
                r = fut => r,
            }
        })
    }

    fn close(&self) {
        self.closed.cancel();
        let io = self.io.clone();
        // Drop the socket now if no call holds a half, else as soon as the calls (released by the
        // token) let go.
        if let (Ok(mut read), Ok(mut write)) = (io.read.try_lock(), io.write.try_lock()) {
            read.take();
            write.take();
            return;
        }
        self.shared.handle.spawn(async move {
            io.read.lock().await.take();
            io.write.lock().await.take();
        });
    }
}

/// Connects to a BSON peer at `addr` ("HOST:PORT", such as "127.0.0.1:27017"; names are resolved).
/// `max_doc` bounds the documents received and sent (length prefix included): 0 is 16 MiB; below 5
/// or above 2 GiB - 1 is NORMAN_ERROR_INVALID_ARGUMENT. Blocks until connected:
/// NORMAN_ERROR_CONNECT when refused or unreachable, NORMAN_ERROR_TIMEOUT after `timeout_ms`
/// (< 0: no limit of ours).
///
/// Ownership: `client` and `addr` are borrowed for the call; the connection keeps the client's
/// runtime in use, so free it before the client. `*conn_out` receives a new handle: free it with
/// `norman_bson_conn_free`.
/// Threads: any thread except the client's callback thread or a runtime worker
/// (NORMAN_ERROR_WRONG_THREAD).
#[no_mangle]
pub unsafe extern "C" fn norman_bson_connect(
    client: *const norman_client,
    addr: *const c_char,
    max_doc: usize,
    timeout_ms: i32,
    conn_out: *mut *mut norman_bson_conn,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let out = unsafe { Out::new(conn_out, "conn_out") }?;
        let addr = host_port(addr)?;
        let limits = limits(max_doc)?;
        let shared = client.shared();
        let stream = shared.block_on(None, async {
            let connect = TcpStream::connect(addr);
            let connected = match timeout_of(timeout_ms) {
                None => connect.await,
                Some(limit) => tokio::time::timeout(limit, connect).await.map_err(|_| {
                    FfiError::from(Error::Timeout {
                        during: "connecting to a BSON peer",
                        after_ms: limit.as_millis(),
                    })
                })?,
            };
            connected.map_err(|source| FfiError::from(Error::Connect { addr: addr.to_owned(), source }))
        })?;
        out.write(into_handle(norman_bson_conn::new(shared.clone(), stream, limits)));
        Ok(())
    })
}

/// Listens for BSON connections on `addr` ("127.0.0.1:0" picks a free port, see
/// `norman_bson_listener_port`). `max_doc` bounds the documents of accepted connections,
/// as in `norman_bson_connect`. NORMAN_ERROR_IO when the address cannot be bound.
///
/// Ownership: `client` and `addr` are borrowed; free the listener (and its connections) before the
/// client. `*listener_out` receives a new handle: free it with `norman_bson_listener_free`.
/// Threads: any thread except the client's callback thread or a runtime worker
/// (NORMAN_ERROR_WRONG_THREAD).
#[no_mangle]
pub unsafe extern "C" fn norman_bson_listen(
    client: *const norman_client,
    addr: *const c_char,
    max_doc: usize,
    listener_out: *mut *mut norman_bson_listener,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let client = unsafe { arg(client, "client") }?;
        let out = unsafe { Out::new(listener_out, "listener_out") }?;
        let addr = host_port(addr)?;
        let limits = limits(max_doc)?;
        let shared = client.shared();
        let listener = shared.block_on(None, async {
            TcpListener::bind(addr).await.map_err(|source| {
                FfiError::new(NORMAN_ERROR_IO, format!("cannot listen on {addr}: {source}"))
            })
        })?;
        out.write(into_handle(norman_bson_listener { shared: shared.clone(), listener, limits }));
        Ok(())
    })
}

/// The port the listener is bound to.
///
/// Ownership: `l` is borrowed; `*port_out` is written. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_listener_port(
    l: *const norman_bson_listener,
    port_out: *mut u16,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let l = unsafe { arg(l, "l") }?;
        let out = unsafe { Out::new(port_out, "port_out") }?;
        let local = l.listener.local_addr().map_err(|e| FfiError::new(NORMAN_ERROR_IO, e.to_string()))?;
        out.write(local.port());
        Ok(())
    })
}

/// Waits up to `timeout_ms` (< 0: forever; 0: only a connection already waiting) for the next
/// connection: NORMAN_NO_EVENT when none came.
///
/// Ownership: `l` is borrowed; `*conn_out` receives a new connection: free it with
/// `norman_bson_conn_free` (before the client; it outlives the listener if you like).
/// Threads: any thread except the client's callback thread or a runtime worker
/// (NORMAN_ERROR_WRONG_THREAD); several threads may accept at once.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_accept(
    l: *const norman_bson_listener,
    timeout_ms: i32,
    conn_out: *mut *mut norman_bson_conn,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let l = unsafe { arg(l, "l") }?;
        let out = unsafe { Out::new(conn_out, "conn_out") }?;
        let stream = l.shared.block_on(None, async {
            let accept = l.listener.accept();
            let accepted = match timeout_of(timeout_ms) {
                None => accept.await,
                Some(limit) => {
                    tokio::time::timeout(limit, accept).await.map_err(|_| no_event("connection"))?
                }
            };
            accepted
                .map(|(stream, _)| stream)
                .map_err(|e| FfiError::new(NORMAN_ERROR_IO, format!("accept: {e}")))
        })?;
        out.write(into_handle(norman_bson_conn::new(l.shared.clone(), stream, l.limits)));
        Ok(())
    })
}

/// Stops listening and frees the listener; connections it accepted stay open. NULL is a no-op.
///
/// Ownership: consumes `l`. Threads: any thread, not concurrently with other calls on it.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_listener_free(l: *mut norman_bson_listener) {
    // SAFETY: the pointer came from norman_bson_listen and is not used again.
    guard_value((), || drop(unsafe { take_handle(l) }))
}

/// Sends exactly one document: `doc` must be one valid BSON document of exactly `len` bytes
/// (length prefix included, every element well-formed, nested at most 100 deep), else
/// NORMAN_ERROR_INVALID_BSON (also for len 0) and nothing is sent; larger than the connection's
/// `max_doc`: NORMAN_ERROR_OVERSIZE, nothing sent. Blocks until the document is handed to the
/// kernel (a peer that does not read can hold it: `norman_bson_conn_close` from another thread
/// releases it). NORMAN_CLOSED after close or when the peer is gone; NORMAN_ERROR_STATE after a send
/// that stopped part way (the peer would misread what follows).
///
/// Ownership: `doc` is borrowed for the call. Threads: any thread except the client's callback
/// thread or a runtime worker (NORMAN_ERROR_WRONG_THREAD); sends from several threads go out one
/// whole document after another; a send may run while another thread receives.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_send(
    c: *const norman_bson_conn,
    doc: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL and length checked; validity is the caller's contract.
        let c = unsafe { arg(c, "c") }?;
        let bytes = unsafe { arg_bytes(doc, len, "doc") }?;
        let doc = RawDocument::from_bytes(bytes)
            .map_err(|e| FfiError::new(NORMAN_ERROR_INVALID_BSON, format!("not one BSON document: {e}")))?;
        c.checker.check(doc).map_err(bson_error)?;
        send(c, doc.as_bytes())
    })
}

/// Sends the document written as relaxed (or canonical) Extended JSON in `json` (one JSON object,
/// else NORMAN_ERROR_INVALID_JSON and nothing is sent); otherwise as `norman_bson_send`.
///
/// Ownership: `json` is borrowed for the call. Threads: as `norman_bson_send`.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_send_json(
    c: *const norman_bson_conn,
    json: *const c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { arg(c, "c") }?;
        let json = unsafe { arg_str(json, "json") }?;
        let doc = json_document(json)?;
        c.checker.check(&doc).map_err(bson_error)?;
        send(c, doc.as_bytes())
    })
}

fn send(c: &norman_bson_conn, bytes: &[u8]) -> FfiResult {
    c.block_on(async {
        let mut side = c.io.write.lock().await;
        let side = side.as_mut().ok_or_else(closed)?;
        if side.cut {
            return Err(FfiError::new(
                NORMAN_ERROR_STATE,
                "an earlier send stopped part way: the peer is out of step; close the connection",
            ));
        }
        side.cut = true; // until the whole document is out (a dropped send leaves it set)
        side.stream.write_all(bytes).await.map_err(send_error)?;
        side.cut = false;
        Ok(())
    })
}

/// Receives the next document, validated, waiting up to `timeout_ms` (< 0: forever; 0: only what
/// already arrived).
/// - NORMAN_NO_EVENT: the timeout passed and nothing of a next document had arrived.
/// - NORMAN_ERROR_TIMEOUT: the timeout passed part way through a document; what arrived is kept and
///   the next call resumes it.
/// - NORMAN_CLOSED: the peer ended the stream cleanly between documents (or the connection was
///   closed); nothing more will come.
/// - NORMAN_ERROR_TRUNCATED: the stream ended inside a document.
/// - NORMAN_ERROR_OVERSIZE: the length prefix is above `max_doc`; NORMAN_ERROR_PROTOCOL: it is below
///   5 (or negative). Both are refused before anything is allocated for the document.
/// - NORMAN_ERROR_INVALID_BSON: a complete frame whose body is not a valid document; the stream is
///   still in step (the next call reads the next document).
/// - NORMAN_ERROR_STATE: after TRUNCATED, OVERSIZE, PROTOCOL or a cut `norman_bson_recv_exact`, the
///   stream is out of step: every later receive returns this; close the connection.
/// - NORMAN_ERROR_CANCELLED: the client was closed (`norman_client_close`), as every blocking call.
///
/// Ownership: `*doc_out` receives a new document: free it with `norman_bson_doc_free`.
/// Threads: any thread except the client's callback thread or a runtime worker
/// (NORMAN_ERROR_WRONG_THREAD); receives from several threads take turns; a receive may run while
/// another thread sends.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_recv(
    c: *const norman_bson_conn,
    timeout_ms: i32,
    doc_out: *mut *mut norman_bson_doc,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { arg(c, "c") }?;
        let out = unsafe { Out::new(doc_out, "doc_out") }?;
        let timeout = timeout_of(timeout_ms);
        let bytes = c.block_on(async {
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut side = lock_read(c, deadline).await?;
            let side = side.as_mut().ok_or_else(closed)?;
            check_in_step(side)?;
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // Copied out at once, so the reader's buffer is free for the next frame.
            let read = side.frames.read(&mut side.stream, left).await;
            match read.map(|doc| doc.map(|doc| Box::<[u8]>::from(doc.as_bytes()))) {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(FfiError::new(NORMAN_CLOSED, "the peer closed the connection")),
                Err(Error::Timeout { .. }) if !side.frames.partial() => Err(no_event("document")),
                Err(e @ Error::Timeout { .. }) => Err(FfiError::new(
                    NORMAN_ERROR_TIMEOUT,
                    format!("{e} (part of a document arrived; the next receive resumes it)"),
                )),
                Err(e) => {
                    // The reader refuses further frames by itself; exact reads must stop too.
                    side.cut |= matches!(e, Error::Truncated { .. } | Error::FrameLength { .. });
                    Err(bson_error(e))
                }
            }
        })?;
        out.write(into_handle(norman_bson_doc { bytes }));
        Ok(())
    })
}

/// Reads exactly `n` bytes into `buf` (py-bson's `recvbytes`), waiting up to `timeout_ms` (as
/// `norman_bson_recv`). NORMAN_CLOSED: the stream ended cleanly before the first byte;
/// NORMAN_ERROR_TRUNCATED: it ended part way (the bytes read are in `buf`); NORMAN_NO_EVENT: the
/// timeout passed with nothing read; NORMAN_ERROR_TIMEOUT: it passed part way (the bytes read are
/// lost to the stream: later receives return NORMAN_ERROR_STATE). NORMAN_ERROR_STATE as well while a
/// document is partly received (a `norman_bson_recv` timed out inside it: finish that first). Shares
/// the connection's read buffer with `norman_bson_recv`, so the two can be mixed. `n` must not be 0
/// (NORMAN_ERROR_INVALID_ARGUMENT); no limit of `max_doc` applies (the buffer is the caller's).
///
/// Ownership: `buf` is borrowed for the call and written. Threads: as `norman_bson_recv`.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_recv_exact(
    c: *const norman_bson_conn,
    buf: *mut u8,
    n: usize,
    timeout_ms: i32,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { arg(c, "c") }?;
        let buf = unsafe { arg_buf(buf, n, "buf") }?;
        let timeout = timeout_of(timeout_ms);
        c.block_on(async {
            let deadline = timeout.map(|t| Instant::now() + t);
            let mut side = lock_read(c, deadline).await?;
            let side = side.as_mut().ok_or_else(closed)?;
            check_in_step(side)?;
            if side.frames.partial() {
                return Err(FfiError::new(
                    NORMAN_ERROR_STATE,
                    "a document is partly received: finish it with norman_bson_recv first",
                ));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let mut filled = 0;
            let during = "reading exact bytes";
            match read_exact_into(&mut side.stream, buf, &mut filled, left, during).await {
                Ok(Exact::Full) => Ok(()),
                Ok(Exact::Closed) => Err(FfiError::new(NORMAN_CLOSED, "the peer closed the connection")),
                Err(Error::Timeout { .. }) if filled == 0 => Err(no_event("bytes")),
                Err(e) => {
                    side.cut = true;
                    Err(FfiError::from(e))
                }
            }
        })
    })
}

/// The read half, waiting for another receive until the deadline (then NORMAN_NO_EVENT).
async fn lock_read(
    c: &norman_bson_conn,
    deadline: Option<Instant>,
) -> FfiResult<tokio::sync::MutexGuard<'_, Option<ReadSide>>> {
    match deadline {
        None => Ok(c.io.read.lock().await),
        Some(d) => tokio::time::timeout_at(d, c.io.read.lock()).await.map_err(|_| no_event("document")),
    }
}

fn check_in_step(side: &ReadSide) -> FfiResult {
    if side.cut {
        return Err(bson_error(Error::FrameStreamBroken));
    }
    Ok(())
}

/// Closes the connection: the socket is shut down (the peer sees a clean end between documents,
/// unless a send was cut), calls blocked in other threads on it return NORMAN_CLOSED, and so does
/// every later call. Closing twice is fine.
///
/// Ownership: nothing is transferred; the handle still needs `norman_bson_conn_free`.
/// Threads: any thread, including the callback thread, concurrently with other calls on it.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_conn_close(c: *const norman_bson_conn) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let c = unsafe { arg(c, "c") }?;
        c.close();
        Ok(())
    })
}

/// Closes (as `norman_bson_conn_close`) and frees the connection. NULL is a no-op.
///
/// Ownership: consumes `c`. Threads: any thread, not concurrently with other calls on it.
#[no_mangle]
pub unsafe extern "C" fn norman_bson_conn_free(c: *mut norman_bson_conn) {
    // SAFETY: the pointer came from norman_bson_connect or norman_bson_accept, not used again.
    guard_value((), || {
        if let Some(c) = unsafe { take_handle(c) } {
            c.close();
        }
    })
}
