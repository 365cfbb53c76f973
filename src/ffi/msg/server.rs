//! `norman_msg_server`: a TCP message server whose handlers are C functions run on the client's
//! callback thread.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::call::{norman_msg_call, Via};
use super::layers::{norman_msg_layers, opt_layers};
use super::{build, free_now, msg_type, norman_msg_handler, run_soon, HandlerEntry, NORMAN_MSG_ONCE};
use crate::ffi::boundary::*;
use crate::ffi::client::{norman_client, ClientShared};
use crate::ffi::events::norman_userdata_free;
use crate::msg::{handler, Call, Key, Layers, Message, MessageType, Server, ServerConfig};

/// A message server (opaque).
pub struct norman_msg_server {
    shared: Arc<ClientShared>,
    server: Server,
    closed: Arc<AtomicBool>,
}

impl norman_msg_server {
    /// Stops listening and closes every connection: waits (up to about 6 s) where it may block,
    /// otherwise leaves it to a task.
    fn shut(&self) {
        self.closed.store(true, Ordering::Release);
        if self.shared.check_open().is_err() {
            return; // the client's runtime is gone, and the server's tasks with it
        }
        let server = self.server.clone();
        if self.shared.check_blocking_allowed().is_ok() {
            let _ = self.shared.block_on(None, async move {
                server.shutdown().await;
                Ok(())
            });
        } else {
            self.shared.handle.spawn(async move { server.shutdown().await });
        }
    }
}

impl Drop for norman_msg_server {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Creates a server (not listening yet) with instance layers `outer` (NULL: none), which open every
/// message and seal every reply, notification and broadcast.
///
/// Ownership: `client` and `outer` borrowed (layers copied; the client must outlive the server);
/// `*server_out` receives a new handle, free it with `norman_msg_server_free` before the client.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_new(
    client: *const norman_client,
    outer: *const norman_msg_layers,
    server_out: *mut *mut norman_msg_server,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let out = unsafe { Out::new(server_out, "server_out") }?;
        let layers = unsafe { opt_layers(outer) };
        client.shared().check_open()?;
        let server = Server::new(ServerConfig { layers, ..ServerConfig::default() });
        let closed = Arc::new(AtomicBool::new(false));
        out.write(into_handle(norman_msg_server { shared: client.shared().clone(), server, closed }));
        Ok(())
    })
}

/// What a `*_on` call registers: the routing key, the handler with its userdata, NORMAN_MSG_ONCE,
/// and the inner layers.
pub(crate) struct Registration {
    pub key: Key,
    pub entry: Arc<HandlerEntry>,
    pub once: bool,
    pub inner: Layers,
}

/// The checks every `*_on` call makes (owner, type and uri, flags, handler); on any failure the
/// userdata is freed at once, as those functions promise. uri NULL/len 0 is any uri of the type.
///
/// # Safety
/// As `arg`, `arg_bytes` and `opt_layers`.
#[allow(clippy::too_many_arguments)] // the arguments of the C call it checks
pub(crate) unsafe fn registration<'a, T>(
    owner: *const T,
    owner_name: &'static str,
    shared: impl FnOnce(&T) -> &Arc<ClientShared>,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    inner: *const norman_msg_layers,
    flags: u32,
    handler: norman_msg_handler,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
) -> FfiResult<(&'a T, Registration)> {
    let checked = (|| {
        // SAFETY: forwarded contract.
        let owner = unsafe { arg(owner, owner_name) }?;
        let t = msg_type(mtype)?;
        let uri = unsafe { arg_bytes(uri, uri_len, "uri") }?;
        if flags & !NORMAN_MSG_ONCE != 0 {
            return Err(FfiError::invalid(format!("unknown flags {flags:#x}")));
        }
        let handler =
            handler.ok_or_else(|| FfiError::new(NORMAN_ERROR_NULL_ARGUMENT, "`handler` is NULL"))?;
        Ok((owner, Key::new(t, (!uri.is_empty()).then_some(uri)), handler))
    })();
    let (owner, key, handler) = checked.inspect_err(|_| free_now(userdata, userdata_free))?;
    let entry = HandlerEntry::new(shared(owner).clone(), handler, userdata, userdata_free);
    // SAFETY: forwarded contract.
    let inner = unsafe { opt_layers(inner) };
    Ok((owner, Registration { key, entry, once: flags & NORMAN_MSG_ONCE != 0, inner }))
}

/// Handles messages of `type` (and `uri`; NULL/len 0: any uri of that type) with `handler`, which
/// runs on the client's callback thread, one call at a time, and receives each message as a
/// `norman_msg_call` it owns: answer it with `norman_msg_call_reply` (then, or later from any
/// thread) or drop it with `norman_msg_call_free`. `inner` layers (NULL: none) open the message
/// after routing and seal the reply; a message failing them gets AUTH_ERROR and never reaches the
/// handler. Flags: NORMAN_MSG_ONCE. Before or after listen; a later registration of the same
/// (type, uri) replaces this one. Messages no handler takes get NOT_FOUND.
///
/// Ownership: `uri` and `inner` borrowed and copied. `userdata` is the handler's: `userdata_free`
/// (may be NULL) runs exactly once, on the callback thread, after the handler's last call (when it
/// is replaced, removed by NORMAN_MSG_ONCE, or the server freed) — or at once if this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_on(
    s: *mut norman_msg_server,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    inner: *const norman_msg_layers,
    flags: u32,
    handler_fn: norman_msg_handler,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let (s, Registration { key, entry, once, inner }) = unsafe {
            registration(
                s,
                "server",
                |s| &s.shared,
                mtype,
                uri,
                uri_len,
                inner,
                flags,
                handler_fn,
                userdata,
                userdata_free,
            )
        }?;
        let (shared, layers, closed) = (s.shared.clone(), inner.clone(), s.closed.clone());
        let f = move |msg: Message, call: Call| {
            let via = Via::Tcp(call, closed.clone());
            entry.deliver(norman_msg_call::new(shared.clone(), msg, layers.clone(), via));
            std::future::ready(None)
        };
        s.server.route(key, inner, once, handler(f));
        Ok(())
    })
}

/// With `on` true, SUBSCRIBE_URI and UNSUBSCRIBE_URI (any uri) are answered by the library:
/// the connection is (un)subscribed and gets CONFIRM_SUBSCRIBE / CONFIRM_UNSUBSCRIBE, as netaio's
/// usual server does. False removes those handlers (as it removes C handlers of those types).
///
/// Ownership: nothing transferred. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_auto_subscribe(
    s: *mut norman_msg_server,
    on: bool,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked.
        let s = unsafe { arg(s, "server") }?;
        for (t, confirm, sub) in [
            (MessageType::SUBSCRIBE_URI, MessageType::CONFIRM_SUBSCRIBE, true),
            (MessageType::UNSUBSCRIBE_URI, MessageType::CONFIRM_UNSUBSCRIBE, false),
        ] {
            let key = Key::Type(t);
            if !on {
                s.server.remove_route(&key);
                continue;
            }
            let f = move |m: Message, call: Call| {
                if sub {
                    call.subscribe(&m.uri);
                } else {
                    call.unsubscribe(&m.uri);
                }
                std::future::ready(Some(m.reply(confirm, Bytes::new())))
            };
            s.server.route(key, Layers::new(), false, handler(f));
        }
        Ok(())
    })
}

/// Binds `addr` ("127.0.0.1:0" picks a free port) and starts accepting; `*port_out` (may be NULL)
/// receives the bound port. A bad address: NORMAN_ERROR_CONNECT (with the reason).
///
/// Ownership: `addr` borrowed. Threads: blocking (briefly); not on the callback thread or a runtime
/// worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_listen(
    s: *mut norman_msg_server,
    addr: *const c_char,
    port_out: *mut u16,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let s = unsafe { arg(s, "server") }?;
        let addr = unsafe { arg_str(addr, "addr") }?.to_owned();
        let server = s.server.clone();
        let bound =
            s.shared.block_on(None, async move { server.listen(&addr).await.map_err(FfiError::from) })?;
        if !port_out.is_null() {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { port_out.write(bound.port()) };
        }
        Ok(())
    })
}

fn write_count(out: *mut usize, n: Option<usize>) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write(n.unwrap_or(0)) };
    }
}

/// Sends NOTIFY_URI (`uri`, `content`) to every connection subscribed to `uri`, sealed with the
/// instance layers; `*delivered_out` (may be NULL) receives how many were queued. A subscriber
/// whose queue is full is disconnected (it never holds up the others). Oversize:
/// NORMAN_ERROR_OVERSIZE.
///
/// Ownership: `uri` and `content` borrowed and copied. Threads: any thread, including the callback
/// thread (it never waits).
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_notify(
    s: *const norman_msg_server,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    delivered_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let s = unsafe { arg(s, "server") }?;
        let msg = unsafe { build(MessageType::NOTIFY_URI.0, uri, uri_len, content, len) }?;
        let server = s.server.clone();
        let n = run_soon(&s.shared, async move {
            let uri = msg.uri.clone();
            server.notify_message(&uri, msg).await
        })?;
        write_count(delivered_out, n);
        Ok(())
    })
}

/// Sends (`type`, `uri`, `content`) to every connected client, sealed with the instance layers;
/// `*delivered_out` (may be NULL) receives how many were queued (slow consumers as in notify).
///
/// Ownership: borrowed and copied. Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_broadcast(
    s: *const norman_msg_server,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    delivered_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let s = unsafe { arg(s, "server") }?;
        let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
        let server = s.server.clone();
        let n = run_soon(&s.shared, async move { server.broadcast(msg).await })?;
        write_count(delivered_out, n);
        Ok(())
    })
}

/// Stops listening and closes every connection (queued replies get about a second to go out);
/// calls answered afterwards get NORMAN_CLOSED. Idempotent. Off the callback thread it waits for
/// the server's tasks to end; on it, they end in the background.
///
/// Ownership: nothing transferred; still free the handle. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_close(s: *const norman_msg_server) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked.
        let s = unsafe { arg(s, "server") }?;
        s.shut();
        Ok(())
    })
}

/// Closes the server (see `norman_msg_server_close`) and frees it; each handler's userdata_free
/// runs once, on the callback thread, after its last call. Calls still held by the application
/// stay valid: answering them gives NORMAN_CLOSED. Free it before its client. NULL is a no-op.
///
/// Ownership: consumes `s`. Threads: any thread, not concurrently with other calls on `s`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_server_free(s: *mut norman_msg_server) {
    // SAFETY: the pointer came from norman_msg_server_new and is not used again.
    guard_value((), || drop(unsafe { take_handle(s) }))
}
