//! `norman_msg_call`: one received message (TCP server or UDP node) handed to a C handler, answered
//! once, now or later, from any thread.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::message::norman_msg;
use super::{check_sizes, msg_type, run_soon};
use crate::ffi::boundary::*;
use crate::ffi::client::ClientShared;
use crate::msg::{Call, Datagram, Layers, Message, REQUEST_ID_FIELD};

/// One received message awaiting an answer (opaque), owned by the handler it was given to.
pub struct norman_msg_call {
    msg: norman_msg,
    inner: Layers,
    shared: Arc<ClientShared>,
    via: Via,
}

pub(crate) enum Via {
    /// The connection, and the server's closed flag (set before its shutdown starts).
    Tcp(Call, Arc<AtomicBool>),
    Udp(Datagram),
}

impl norman_msg_call {
    pub(crate) fn new(shared: Arc<ClientShared>, msg: Message, inner: Layers, via: Via) -> Box<Self> {
        Box::new(norman_msg_call { msg: norman_msg { msg }, inner, shared, via })
    }

    fn reply(self, t: u8, content: &[u8]) -> FfiResult {
        let t = msg_type(t)?;
        check_sizes(self.msg.msg.uri.len(), content.len())?;
        let mut m = Message::new(t, self.msg.msg.uri.clone(), Bytes::copy_from_slice(content));
        if let Some(rid) = self.msg.msg.auth.get_bytes(REQUEST_ID_FIELD).filter(|r| r.len() <= 16) {
            m.auth.set_bytes(REQUEST_ID_FIELD, rid);
        }
        // The handler's layers first; the server or node seals with its instance layers.
        self.inner.seal(&mut m)?;
        match self.via {
            Via::Tcp(call, closed) => {
                if closed.load(Ordering::Acquire) {
                    return Err(FfiError::new(NORMAN_CLOSED, "the server is closed"));
                }
                run_soon(&self.shared, async move { call.send(m).await }).map(drop)
            }
            Via::Udp(d) => {
                let node = d
                    .node()
                    .filter(|n| !n.is_closed())
                    .ok_or_else(|| FfiError::new(NORMAN_CLOSED, "the node is closed"))?;
                let to = d.from;
                run_soon(&self.shared, async move { node.send_to(m, to).await }).map(drop)
            }
        }
    }
}

/// The received message (opened by every layer).
///
/// Ownership: `*msg_out` is borrowed from the call, valid until the call is replied to or freed;
/// never free it. Threads: any thread holding the call.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_message(
    c: *const norman_msg_call,
    msg_out: *mut *const norman_msg,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "call") }?;
        let out = unsafe { Out::new(msg_out, "msg_out") }?;
        out.write(&c.msg);
        Ok(())
    })
}

/// The id of the TCP connection the message came on (unique in its server); 0 for a UDP call or NULL.
///
/// Ownership: `c` is borrowed. Threads: any thread holding the call.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_conn_id(c: *const norman_msg_call) -> u64 {
    // SAFETY: NULL or a live call.
    guard_value(0, || match unsafe { c.as_ref() }.map(|c| &c.via) {
        Some(Via::Tcp(call, _)) => call.conn_id(),
        _ => 0,
    })
}

/// The sender's address as "ip:port" ("[v6]:port"), NUL-terminated, into `buf`;
/// NORMAN_ERROR_BUFFER_TOO_SMALL when it does not fit with its NUL (64 bytes always do).
///
/// Ownership: `buf` is the caller's. Threads: any thread holding the call.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_peer(
    c: *const norman_msg_call,
    buf: *mut c_char,
    capacity: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "call") }?;
        let buf = unsafe { arg_buf(buf.cast::<u8>(), capacity, "buf") }?;
        let text = match &c.via {
            Via::Tcp(call, _) => call.peer().to_string(),
            Via::Udp(d) => d.from.to_string(),
        };
        if text.len() + 1 > buf.len() {
            return Err(FfiError::new(
                NORMAN_ERROR_BUFFER_TOO_SMALL,
                format!("the address needs {} bytes", text.len() + 1),
            ));
        }
        buf[..text.len()].copy_from_slice(text.as_bytes());
        buf[text.len()] = 0;
        Ok(())
    })
}

fn tcp(c: &norman_msg_call) -> FfiResult<&Call> {
    match &c.via {
        Via::Tcp(call, _) => Ok(call),
        Via::Udp(_) => Err(FfiError::invalid("a UDP call has no connection to subscribe")),
    }
}

/// Subscribes the call's connection to `uri` (it then gets `norman_msg_server_notify` for it until
/// it unsubscribes or disconnects). A UDP call: NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: `uri` borrowed and copied. Threads: any thread holding the call.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_subscribe(
    c: *const norman_msg_call,
    uri: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "call") }?;
        let uri = unsafe { arg_bytes(uri, len, "uri") }?;
        tcp(c)?.subscribe(uri);
        Ok(())
    })
}

/// Unsubscribes the call's connection from `uri`. A UDP call: NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: `uri` borrowed. Threads: any thread holding the call.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_unsubscribe(
    c: *const norman_msg_call,
    uri: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let c = unsafe { arg(c, "call") }?;
        let uri = unsafe { arg_bytes(uri, len, "uri") }?;
        tcp(c)?.unsubscribe(uri);
        Ok(())
    })
}

/// Answers the call with (`type`, the request's uri, `content`), the request id echoed, sealed with
/// the handler's inner layers then the instance layers, and queued on the connection's writer (TCP)
/// or sent to the sender (UDP). Consumes the call even on error. A server or node closed or freed
/// meanwhile, or a connection gone: NORMAN_CLOSED. Oversize content: NORMAN_ERROR_OVERSIZE.
/// When the connection's queue is full the calling thread waits for room, except on the callback
/// thread, where a task sends it (the call still returns NORMAN_OK).
///
/// Ownership: consumes `c`; `content` borrowed and copied. Threads: any thread, including the
/// callback thread (inside the handler or later).
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_reply(
    c: *mut norman_msg_call,
    mtype: u8,
    content: *const u8,
    len: usize,
) -> norman_result {
    guard(|| {
        // SAFETY: the pointer came from a handler and is not used again (consumed here).
        let c = unsafe { take_handle(c) }
            .ok_or_else(|| FfiError::new(NORMAN_ERROR_NULL_ARGUMENT, "`call` is NULL"))?;
        let content = unsafe { arg_bytes(content, len, "content") }?;
        c.reply(mtype, content)
    })
}

/// Drops the call without answering (the requester times out, or gets nothing if it expected
/// nothing). NULL is a no-op.
///
/// Ownership: consumes `c`. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_call_free(c: *mut norman_msg_call) {
    // SAFETY: the pointer came from a handler and is not used again.
    guard_value((), || drop(unsafe { take_handle(c) }))
}
