//! Messaging through the C ABI (`norman_msg_*`), on top of [`crate::msg`]: layers, received
//! messages, a TCP server whose handlers run on the client's callback thread, a client connection,
//! a UDP node. Handlers never run C code on a runtime worker: the Rust handler hands the call to
//! the callback thread and returns; the C side answers later through the connection's writer.
// The C signatures are the contract (MSG_CAPI.md): (pointer, length) pairs make them long.
#![allow(clippy::too_many_arguments)]

pub mod call;
pub mod conn;
pub mod layers;
pub mod message;
pub mod node;
pub mod server;

use std::ffi::c_void;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;

use super::boundary::*;
use super::client::ClientShared;
use super::events::{Dispatch, UserData};
use crate::msg::wire::MAX_FIELD_LEN;
use crate::msg::{Message, MessageType};

/// The message types of netaio 0.0.9 (functions take the type as a `uint8_t`; 31-255 are
/// application types, the values 0-30 not listed here are refused).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum norman_msg_type {
    /// Ask for a resource; answered with RESPOND_URI.
    NORMAN_MSG_REQUEST_URI = 0,
    /// The answer to REQUEST_URI.
    NORMAN_MSG_RESPOND_URI = 1,
    /// Create a resource.
    NORMAN_MSG_CREATE_URI = 2,
    /// Update a resource.
    NORMAN_MSG_UPDATE_URI = 3,
    /// Delete a resource.
    NORMAN_MSG_DELETE_URI = 4,
    /// Subscribe to a uri; answered with CONFIRM_SUBSCRIBE.
    NORMAN_MSG_SUBSCRIBE_URI = 5,
    /// Unsubscribe; answered with CONFIRM_UNSUBSCRIBE.
    NORMAN_MSG_UNSUBSCRIBE_URI = 6,
    /// Publish to a uri's subscribers.
    NORMAN_MSG_PUBLISH_URI = 7,
    /// A notification to a subscriber.
    NORMAN_MSG_NOTIFY_URI = 8,
    /// A UDP node's advertisement.
    NORMAN_MSG_ADVERTISE_PEER = 9,
    /// Success without content.
    NORMAN_MSG_OK = 10,
    /// The answer to SUBSCRIBE_URI.
    NORMAN_MSG_CONFIRM_SUBSCRIBE = 11,
    /// The answer to UNSUBSCRIBE_URI.
    NORMAN_MSG_CONFIRM_UNSUBSCRIBE = 12,
    /// A UDP node's answer to an advertisement.
    NORMAN_MSG_PEER_DISCOVERED = 13,
    /// An error reply.
    NORMAN_MSG_ERROR = 20,
    /// An auth layer refused the message.
    NORMAN_MSG_AUTH_ERROR = 23,
    /// No handler or no such resource.
    NORMAN_MSG_NOT_FOUND = 24,
    /// Refused by the application.
    NORMAN_MSG_NOT_PERMITTED = 25,
    /// A UDP node leaves.
    NORMAN_MSG_DISCONNECT = 30,
}

/// `flags` of `norman_msg_server_on` / `norman_msg_node_on`: the handler is removed after its
/// first message.
pub const NORMAN_MSG_ONCE: u32 = 1;

/// Takes one received message awaiting an answer; see `norman_msg_server_on`. Runs on the client's
/// callback thread.
pub type norman_msg_handler =
    Option<unsafe extern "C" fn(userdata: *mut c_void, call: *mut call::norman_msg_call)>;

pub(crate) fn msg_type(t: u8) -> FfiResult<MessageType> {
    let t = MessageType(t);
    if t.is_valid() {
        Ok(t)
    } else {
        Err(FfiError::invalid(format!("message type {} is not assigned (netaio refuses it)", t.0)))
    }
}

/// Checks the sizes a frame allows before anything is copied.
pub(crate) fn check_sizes(uri_len: usize, content_len: usize) -> FfiResult {
    if uri_len > MAX_FIELD_LEN || 2 + uri_len + content_len > MAX_FIELD_LEN {
        return Err(FfiError::new(
            NORMAN_ERROR_OVERSIZE,
            format!(
                "uri ({uri_len} bytes) + content ({content_len} bytes) + 2 exceed a message body's {MAX_FIELD_LEN} bytes"
            ),
        ));
    }
    Ok(())
}

/// A message built from C arguments (type checked, sizes checked before copying).
///
/// # Safety
/// The (pointer, length) pairs follow `arg_bytes`.
pub(crate) unsafe fn build(
    t: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
) -> FfiResult<Message> {
    let t = msg_type(t)?;
    // SAFETY: forwarded contract.
    let uri = unsafe { arg_bytes(uri, uri_len, "uri") }?;
    let content = unsafe { arg_bytes(content, len, "content") }?;
    check_sizes(uri.len(), content.len())?;
    Ok(Message::new(t, Bytes::copy_from_slice(uri), Bytes::copy_from_slice(content)))
}

/// `timeout_ms` as a deadline: negative waits (practically) forever.
pub(crate) fn deadline(timeout_ms: i32) -> Duration {
    match u64::try_from(timeout_ms) {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => Duration::from_secs(100 * 365 * 86_400),
    }
}

/// Runs a future that normally completes at once (queueing a frame, a datagram, a fan-out): polled
/// once here; if it must wait (a full queue) the calling thread waits for it when it may block,
/// otherwise (callback thread, runtime worker) a task finishes it and `Ok(None)` is returned.
pub(crate) fn run_soon<T: Send + 'static>(
    shared: &Arc<ClientShared>,
    fut: impl Future<Output = crate::Result<T>> + Send + 'static,
) -> FfiResult<Option<T>> {
    shared.check_open()?;
    let mut fut = Box::pin(fut);
    let polled = {
        let _ctx = shared.handle.enter();
        (&mut fut).now_or_never()
    };
    if let Some(r) = polled {
        return r.map(Some).map_err(FfiError::from);
    }
    if shared.check_blocking_allowed().is_ok() {
        return shared.block_on(None, async { fut.await.map_err(FfiError::from) }).map(Some);
    }
    shared.handle.spawn(async move {
        if let Err(e) = fut.await {
            log::debug!(target: "norman::ffi", "a queued message was not sent: {e}");
        }
    });
    Ok(None)
}

/// A C handler with its userdata; the userdata is freed (on the callback thread when it still
/// runs) when the last reference goes, i.e. after the last call of the handler was delivered.
pub(crate) struct HandlerEntry {
    pub handler: unsafe extern "C" fn(*mut c_void, *mut call::norman_msg_call),
    pub userdata: UserData,
    free: Option<FreeJob>,
    shared: Arc<ClientShared>,
}

struct FreeJob(unsafe extern "C" fn(*mut c_void), UserData);

impl Drop for FreeJob {
    fn drop(&mut self) {
        // SAFETY: the caller's free function for its own pointer, called once (this drop).
        unsafe { (self.0)(self.1.get()) }
    }
}

impl HandlerEntry {
    pub fn new(
        shared: Arc<ClientShared>,
        handler: unsafe extern "C" fn(*mut c_void, *mut call::norman_msg_call),
        userdata: *mut c_void,
        userdata_free: super::events::norman_userdata_free,
    ) -> Arc<HandlerEntry> {
        let free = userdata_free.map(|f| FreeJob(f, UserData(userdata)));
        Arc::new(HandlerEntry { handler, userdata: UserData(userdata), free, shared })
    }

    /// Hands `call` to the callback thread, which runs the handler with it.
    pub fn deliver(self: &Arc<Self>, call: Box<call::norman_msg_call>) {
        let entry = self.clone();
        self.shared.send(Dispatch::Run(Box::new(move || {
            let ptr = Box::into_raw(call);
            // SAFETY: the caller's handler with its userdata; the call is the handler's to consume.
            unsafe { (entry.handler)(entry.userdata.get(), ptr) }
        })));
    }
}

impl Drop for HandlerEntry {
    fn drop(&mut self) {
        if let Some(job) = self.free.take() {
            // Behind every delivery already queued; run here if the callback thread is gone.
            self.shared.send(Dispatch::Run(Box::new(move || drop(job))));
        }
    }
}

/// Calls `userdata_free` for a registration that failed before it took the userdata.
pub(crate) fn free_now(userdata: *mut c_void, userdata_free: super::events::norman_userdata_free) {
    if let Some(f) = userdata_free {
        drop(FreeJob(f, UserData(userdata)));
    }
}
