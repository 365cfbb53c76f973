//! `norman_msg_conn`: a client connection to a message server (requests with deadlines, one-way
//! sends, unsolicited messages).

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use futures_util::FutureExt;

use super::layers::{norman_msg_layers, opt_layers};
use super::message::{msg_out as owned_msg, norman_msg};
use super::{build, deadline, run_soon};
use crate::ffi::boundary::*;
use crate::ffi::client::{norman_client, start, ClientShared, Mode};
use crate::ffi::events::{
    norman_callback, norman_event, norman_event_kind, norman_userdata_free, on_callback_thread, Completion,
    Outcome,
};
use crate::msg::{Client, ClientConfig, Layers, Message};
use crate::Error;

/// A connection to a message server (opaque). Usable from many threads at once.
pub struct norman_msg_conn {
    shared: Arc<ClientShared>,
    client: Client,
}

/// A request's result: the reply, and the error that still hands it out (MSG_REMOTE).
pub(crate) fn split_reply(r: crate::Result<Message>) -> FfiResult<(Message, Option<FfiError>)> {
    match r {
        Ok(m) => Ok((m, None)),
        Err(e @ Error::Remote { .. }) => {
            let failure = FfiError::new(NORMAN_ERROR_MSG_REMOTE, e.to_string());
            let Error::Remote { reply } = e else { unreachable!() };
            Ok((*reply, Some(failure)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the reply and returns the call's result.
pub(crate) fn hand_out(
    out: Out<*mut norman_msg>,
    (reply, failure): (Message, Option<FfiError>),
) -> FfiResult {
    out.write(owned_msg(reply));
    failure.map_or(Ok(()), Err)
}

/// Connects to `addr` ("host:port") within `timeout_ms` (negative: the system's own connect
/// timeout); `outer` layers (NULL: none) seal everything sent and open everything received. A
/// refused or unreachable address: NORMAN_ERROR_CONNECT; too slow: NORMAN_ERROR_TIMEOUT. A lost
/// connection is not re-established: later calls get NORMAN_CLOSED.
///
/// Ownership: `client`, `addr`, `outer` borrowed (layers copied; the client must outlive the
/// connection); `*conn_out` receives a new handle, free it with `norman_msg_conn_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_connect(
    client: *const norman_client,
    addr: *const c_char,
    outer: *const norman_msg_layers,
    timeout_ms: i32,
    conn_out: *mut *mut norman_msg_conn,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let addr = unsafe { arg_str(addr, "addr") }?.to_owned();
        let out = unsafe { Out::new(conn_out, "conn_out") }?;
        let layers = unsafe { opt_layers(outer) };
        let config =
            ClientConfig { layers, connect_timeout: deadline(timeout_ms), ..ClientConfig::default() };
        let shared = client.shared();
        let c = shared
            .block_on(None, async move { Client::connect(&addr, config).await.map_err(FfiError::from) })?;
        out.write(into_handle(norman_msg_conn { shared: shared.clone(), client: c }));
        Ok(())
    })
}

/// Sends one message (no reply awaited), sealed with `inner` (NULL: none) then the outer layers.
/// Waits while the connection's queue is full; on the callback thread a full queue hands the
/// message to a task instead. Closed or lost connection: NORMAN_CLOSED; oversize:
/// NORMAN_ERROR_OVERSIZE; unassigned type: NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: borrowed and copied. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_send(
    c: *const norman_msg_conn,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "conn") }?;
        let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
        let inner = unsafe { opt_layers(inner) };
        let client = c.client.clone();
        run_soon(&c.shared, async move { client.send_with(msg, &inner).await }).map(drop)
    })
}

/// # Safety
/// As the exported functions document.
unsafe fn prepare(
    c: *const norman_msg_conn,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
) -> FfiResult<(&'static norman_msg_conn, Message, Layers)> {
    // SAFETY: forwarded contract (the handle outlives the call).
    let c = unsafe { arg(c, "conn") }?;
    let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
    Ok((c, msg, unsafe { opt_layers(inner) }))
}

/// Sends a request and waits up to `timeout_ms` (negative: forever) for its reply, matched by
/// request id (libnorman peers) or uri and type (netaio peers). `inner` (NULL: none) seals the
/// request and opens the reply. The peer answering ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED:
/// NORMAN_ERROR_MSG_REMOTE and `*reply_out` is set too (free it). No reply in time:
/// NORMAN_ERROR_TIMEOUT; connection closed or lost meanwhile: NORMAN_CLOSED; a reply failing
/// `inner`: NORMAN_ERROR_MSG_AUTH or NORMAN_ERROR_DECRYPT.
///
/// Ownership: arguments borrowed and copied; `*reply_out` receives an owned message, free it with
/// `norman_msg_free`. Threads: blocking; any thread but the callback thread or a runtime worker;
/// many threads may wait on one connection at once.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_request(
    c: *const norman_msg_conn,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
    timeout_ms: i32,
    reply_out: *mut *mut norman_msg,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let out = unsafe { Out::new(reply_out, "reply_out") }?;
        let (c, msg, inner) = unsafe { prepare(c, mtype, uri, uri_len, content, len, inner) }?;
        let client = &c.client;
        let got = c.shared.block_on(None, async move {
            split_reply(client.request_message(msg, &inner, deadline(timeout_ms)).await)
        })?;
        hand_out(out, got)
    })
}

/// Starts `norman_msg_conn_request` and returns at once with `*op_id_out` (may be NULL). Completion:
/// one NORMAN_EVENT_MSG_REPLY event (reply via `norman_event_take_msg`, also when its result is
/// NORMAN_ERROR_MSG_REMOTE) to `callback` on the callback thread, or to `norman_client_next_event`
/// when `callback` is NULL. `norman_client_cancel` ends it with NORMAN_ERROR_CANCELLED.
///
/// Ownership: arguments borrowed and copied; `userdata` freed with `userdata_free` (may be NULL)
/// exactly once after the completion was delivered, even when this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_request_async(
    c: *const norman_msg_conn,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
    timeout_ms: i32,
    callback: norman_callback,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
    op_id_out: *mut u64,
) -> norman_result {
    start(Completion { callback, userdata, userdata_free }, |completion| {
        // SAFETY: forwarded contract.
        let (c, msg, inner) = unsafe { prepare(c, mtype, uri, uri_len, content, len, inner) }?;
        let client = c.client.clone();
        let mode = Mode::Async { kind: norman_event_kind::NORMAN_EVENT_MSG_REPLY, completion, op_id_out };
        c.shared
            .run_eager(mode, async move {
                let (reply, failure) =
                    split_reply(client.request_message(msg, &inner, deadline(timeout_ms)).await)?;
                Ok(Outcome { msg: std::sync::Mutex::new(Some(reply)), failure, ..Outcome::default() })
            })
            .map(drop)
    })
}

/// Moves the reply out of a NORMAN_EVENT_MSG_REPLY event (result NORMAN_OK or
/// NORMAN_ERROR_MSG_REMOTE), once; another kind of event: NORMAN_ERROR_INVALID_ARGUMENT; no reply
/// (another result, or already taken): NORMAN_ERROR_STATE.
///
/// Ownership: `event` borrowed (a callback's or a polled one); `*msg_out` receives an owned
/// message, free it with `norman_msg_free`. Threads: any thread holding the event.
#[no_mangle]
pub unsafe extern "C" fn norman_event_take_msg(
    event: *const norman_event,
    msg_out: *mut *mut norman_msg,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let event = unsafe { arg(event, "event") }?;
        let out = unsafe { Out::new(msg_out, "msg_out") }?;
        if event.kind() != norman_event_kind::NORMAN_EVENT_MSG_REPLY {
            return Err(FfiError::invalid("not a NORMAN_EVENT_MSG_REPLY event"));
        }
        let taken = event.outcome().msg.lock().unwrap_or_else(|p| p.into_inner()).take();
        let m = taken.ok_or_else(|| FfiError::new(NORMAN_ERROR_STATE, "the event has no reply (left)"))?;
        out.write(owned_msg(m));
        Ok(())
    })
}

/// The next unsolicited message (notifications, broadcasts, anything not a reply to a request),
/// waiting up to `timeout_ms` (0: do not wait; negative: until one comes or the connection closes).
/// None in time: NORMAN_NO_EVENT; the connection closed (by either side) with nothing left:
/// NORMAN_CLOSED. Up to 1024 unread messages are kept; more are dropped (with a log line).
///
/// Ownership: `*msg_out` receives an owned message, free it with `norman_msg_free`.
/// Threads: any thread; with a non-zero timeout not the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_next(
    c: *const norman_msg_conn,
    timeout_ms: i32,
    msg_out: *mut *mut norman_msg,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "conn") }?;
        let out = unsafe { Out::new(msg_out, "msg_out") }?;
        let client = &c.client;
        let got = if timeout_ms == 0 {
            let _ctx = c.shared.handle.enter();
            match client.recv().now_or_never() {
                None => return Err(FfiError::new(NORMAN_NO_EVENT, "no message")),
                Some(m) => m,
            }
        } else {
            if on_callback_thread() {
                return Err(FfiError::new(
                    NORMAN_ERROR_WRONG_THREAD,
                    "next must not wait on the callback thread",
                ));
            }
            let wait = deadline(timeout_ms);
            c.shared.block_on(None, async move {
                tokio::time::timeout(wait, client.recv())
                    .await
                    .map_err(|_| FfiError::new(NORMAN_NO_EVENT, "no message within the timeout"))
            })?
        };
        let m = got.ok_or_else(|| FfiError::new(NORMAN_CLOSED, "the connection is closed"))?;
        out.write(owned_msg(m));
        Ok(())
    })
}

/// Closes the connection: requests in flight and threads waiting in `norman_msg_conn_next` return
/// NORMAN_CLOSED; messages already queued get a moment to go out. Idempotent.
///
/// Ownership: nothing transferred; still free the handle. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_close(c: *const norman_msg_conn) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked.
        let c = unsafe { arg(c, "conn") }?;
        let _ctx = c.shared.handle.enter();
        // The close itself is synchronous; the future then only yields.
        let _ = c.client.close().now_or_never();
        Ok(())
    })
}

/// Closes (see `norman_msg_conn_close`) and frees the connection. NULL is a no-op.
///
/// Ownership: consumes `c`. Threads: any thread, not concurrently with other calls on `c`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_conn_free(c: *mut norman_msg_conn) {
    // SAFETY: the pointer came from norman_msg_connect and is not used again.
    guard_value((), || {
        if let Some(c) = unsafe { take_handle(c) } {
            let _ctx = c.shared.handle.enter();
            let _ = c.client.close().now_or_never();
        }
    })
}
