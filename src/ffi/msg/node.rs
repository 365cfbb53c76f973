//! `norman_msg_node`: a UDP message node (datagrams, multicast, netaio's peer management) whose
//! handlers are C functions run on the client's callback thread.

use std::ffi::{c_char, c_void};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::call::{norman_msg_call, Via};
use super::conn::{hand_out, split_reply};
use super::layers::{norman_msg_layers, opt_layers};
use super::message::{msg_out as owned_msg, norman_msg};
use super::server::{registration, Registration};
use super::{build, deadline, norman_msg_handler, run_soon};
use crate::ffi::boundary::*;
use crate::ffi::client::{norman_client, ClientShared};
use crate::ffi::events::{norman_userdata_free, on_callback_thread};
use crate::ffi::memory::string_out;
use crate::msg::{handler, Datagram, Message, MessageType, MulticastConfig, Node, NodeConfig, PeerConfig};

/// Datagrams no handler took, kept for `norman_msg_node_next` at most.
const INBOX: usize = 1024;

/// A UDP node (opaque). Usable from many threads at once.
pub struct norman_msg_node {
    shared: Arc<ClientShared>,
    node: Node,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Message>>,
}

impl Drop for norman_msg_node {
    fn drop(&mut self) {
        close(self);
    }
}

fn close(n: &norman_msg_node) {
    if n.shared.check_open().is_err() || n.node.is_closed() {
        return;
    }
    let _ctx = n.shared.handle.enter();
    let node = n.node.clone();
    // Closing multicasts DISCONNECT (peer management) then stops: never long, but async.
    let _ = run_soon(&n.shared, async move {
        node.close().await;
        Ok(())
    });
}

fn parse_addr(text: &str, name: &str) -> FfiResult<SocketAddr> {
    text.parse().map_err(|_| FfiError::invalid(format!("`{name}` {text:?} is not an ip:port address")))
}

/// Creates a UDP node bound to `bind` ("127.0.0.1:0" picks a port). `group` (NULL: no multicast)
/// is the multicast group joined and sent to: "224.0.0.1" (netaio's default) on the node's own
/// port, as netaio does, or "224.0.0.1:PORT" on PORT (nodes bound to different ports meet there);
/// `multicast_if` (NULL: 127.0.0.1 for IPv4, the kernel's choice for IPv6) is the interface address
/// (IPv4) or index (IPv6). `outer` layers (NULL: none) seal and open every datagram. Datagrams no
/// handler takes are kept for `norman_msg_node_next` (requests among them are still answered
/// NOT_FOUND). Bad addresses: NORMAN_ERROR_INVALID_ARGUMENT; a port in use: NORMAN_ERROR_CONNECT.
///
/// Ownership: arguments borrowed and copied (the client must outlive the node); `*node_out`
/// receives a new handle, free it with `norman_msg_node_free`.
/// Threads: blocking (briefly); not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_new(
    client: *const norman_client,
    bind: *const c_char,
    group: *const c_char,
    multicast_if: *const c_char,
    outer: *const norman_msg_layers,
    node_out: *mut *mut norman_msg_node,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let client = unsafe { arg(client, "client") }?;
        let bind = parse_addr(unsafe { arg_str(bind, "bind") }?, "bind")?;
        let group = unsafe { opt_str(group, "group") }?;
        let interface = unsafe { opt_str(multicast_if, "multicast_if") }?;
        let out = unsafe { Out::new(node_out, "node_out") }?;
        let mut config = NodeConfig::new(bind);
        config.layers = unsafe { opt_layers(outer) };
        if let Some(g) = group {
            // "ip" (the node's own port, as netaio) or "ip:port" (nodes on different ports meet there).
            let (group, port) = match g.parse::<SocketAddr>() {
                Ok(a) => (a.ip(), Some(a.port())),
                Err(_) => (
                    g.parse::<IpAddr>()
                        .map_err(|_| FfiError::invalid(format!("`group` {g:?} is not an IP address")))?,
                    None,
                ),
            };
            let mut m = MulticastConfig { group, port, ..MulticastConfig::default() };
            match (interface, group) {
                (None, _) => {}
                (Some(i), IpAddr::V4(_)) => {
                    m.interface_v4 = i.parse::<Ipv4Addr>().map_err(|_| {
                        FfiError::invalid(format!("`multicast_if` {i:?} is not an IPv4 address"))
                    })?
                }
                (Some(i), IpAddr::V6(_)) => {
                    m.interface_v6 = i.parse::<u32>().map_err(|_| {
                        FfiError::invalid(format!("`multicast_if` {i:?} is not an interface index"))
                    })?
                }
            }
            config.multicast = Some(m);
        }
        let shared = client.shared();
        let node = shared.block_on(None, async move { Node::bind(config).await.map_err(FfiError::from) })?;
        let (tx, rx) = mpsc::channel(INBOX);
        node.set_default(Some(handler(move |m: Message, _d: Datagram| {
            let answer = (!m.message_type.is_answer())
                .then(|| Message::new(MessageType::NOT_FOUND, m.uri.clone(), &b"not found"[..]));
            if tx.try_send(m).is_err() {
                log::warn!(target: "norman::ffi", "msg node: inbox full; a datagram was dropped");
            }
            std::future::ready(answer)
        })));
        out.write(into_handle(norman_msg_node {
            shared: shared.clone(),
            node,
            inbox: tokio::sync::Mutex::new(rx),
        }));
        Ok(())
    })
}

/// The bound UDP port.
///
/// Ownership: nothing transferred. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_port(
    n: *const norman_msg_node,
    port_out: *mut u16,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = unsafe { arg(n, "node") }?;
        let out = unsafe { Out::new(port_out, "port_out") }?;
        out.write(n.node.local_addr().port());
        Ok(())
    })
}

/// Handles datagrams of `type` (and `uri`; NULL/len 0: any) with `handler`, as
/// `norman_msg_server_on` does; the reply (`norman_msg_call_reply`) goes to the sender.
///
/// Ownership: as `norman_msg_server_on` (userdata_free once, after the last call, or at once if this
/// fails). Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_on(
    n: *mut norman_msg_node,
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
        let (n, Registration { key, entry, once, inner }) = unsafe {
            registration(
                n,
                "node",
                |n| &n.shared,
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
        let (shared, layers) = (n.shared.clone(), inner.clone());
        let f = move |msg: Message, d: Datagram| {
            entry.deliver(norman_msg_call::new(shared.clone(), msg, layers.clone(), Via::Udp(d)));
            std::future::ready(None)
        };
        n.node.route(key, inner, once, handler(f));
        Ok(())
    })
}

/// Sends one datagram to `addr` ("ip:port"), sealed with `inner` (NULL: none) then the outer
/// layers. Larger than a datagram: NORMAN_ERROR_OVERSIZE; node closed: NORMAN_CLOSED.
///
/// Ownership: borrowed and copied. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_send_to(
    n: *const norman_msg_node,
    addr: *const c_char,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = open(unsafe { arg(n, "node") }?)?;
        let to = parse_addr(unsafe { arg_str(addr, "addr") }?, "addr")?;
        let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
        let inner = unsafe { opt_layers(inner) };
        let node = n.node.clone();
        run_soon(&n.shared, async move { node.send_to_with(msg, to, &inner).await }).map(drop)
    })
}

fn open(n: &norman_msg_node) -> FfiResult<&norman_msg_node> {
    if n.node.is_closed() {
        return Err(FfiError::new(NORMAN_CLOSED, "the node is closed"));
    }
    Ok(n)
}

/// Sends one datagram to the multicast group. A node without a group: NORMAN_ERROR_INVALID_CONFIG.
///
/// Ownership: borrowed and copied. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_multicast(
    n: *const norman_msg_node,
    mtype: u8,
    uri: *const u8,
    uri_len: usize,
    content: *const u8,
    len: usize,
    inner: *const norman_msg_layers,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = open(unsafe { arg(n, "node") }?)?;
        let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
        let inner = unsafe { opt_layers(inner) };
        let node = n.node.clone();
        run_soon(&n.shared, async move { node.multicast_with(msg, &inner).await }).map(drop)
    })
}

/// Sends a request datagram to `addr` and waits up to `timeout_ms` (negative: forever) for the
/// reply from that address; errors and `*reply_out` as `norman_msg_conn_request` (no answer:
/// NORMAN_ERROR_TIMEOUT).
///
/// Ownership: borrowed and copied; `*reply_out` receives an owned message (free it).
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_request(
    n: *const norman_msg_node,
    addr: *const c_char,
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
        let n = open(unsafe { arg(n, "node") }?)?;
        let out = unsafe { Out::new(reply_out, "reply_out") }?;
        let to = parse_addr(unsafe { arg_str(addr, "addr") }?, "addr")?;
        let msg = unsafe { build(mtype, uri, uri_len, content, len) }?;
        let inner = unsafe { opt_layers(inner) };
        let node = &n.node;
        let got = n.shared.block_on(None, async move {
            split_reply(node.request_message(msg, to, &inner, deadline(timeout_ms)).await)
        })?;
        hand_out(out, got)
    })
}

/// Starts netaio's peer management: advertises (`id`, `data`) to the group every `every_ms`,
/// answers and records the advertisements of others, forgets peers silent for `timeout_ms`, and
/// multicasts DISCONNECT when the node closes. Needs a group. An empty id or a zero period:
/// NORMAN_ERROR_INVALID_ARGUMENT.
///
/// Ownership: borrowed and copied. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_manage_peers(
    n: *mut norman_msg_node,
    id: *const u8,
    id_len: usize,
    data: *const u8,
    data_len: usize,
    every_ms: u32,
    timeout_ms: u32,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = open(unsafe { arg(n, "node") }?)?;
        let id = unsafe { arg_bytes(id, id_len, "id") }?;
        let data = unsafe { arg_bytes(data, data_len, "data") }?;
        if id.is_empty() || every_ms == 0 || timeout_ms == 0 {
            return Err(FfiError::invalid("the id must not be empty, every_ms and timeout_ms not 0"));
        }
        if n.node.multicast_addr().is_none() {
            return Err(FfiError::new(
                NORMAN_ERROR_INVALID_CONFIG,
                "peer management needs a multicast group",
            ));
        }
        let mut config = PeerConfig::new(id.to_vec(), data.to_vec());
        config.every = Duration::from_millis(every_ms.into());
        config.timeout = Duration::from_millis(timeout_ms.into());
        let _ctx = n.shared.handle.enter();
        n.node.manage_peers(config);
        Ok(())
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The known peers as a JSON array:
/// `[{"id_hex":"..","addr":"ip:port","data_b64":"..","last_seen_ms_ago":N}]` (most recent address).
///
/// Ownership: `*json_out` receives a string owned by the caller: free it with `norman_string_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_peers_json(
    n: *const norman_msg_node,
    json_out: *mut *mut c_char,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = unsafe { arg(n, "node") }?;
        let out = unsafe { Out::new(json_out, "json_out") }?;
        let now = Instant::now();
        let mut peers = n.node.peers();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        let list: Vec<serde_json::Value> = peers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id_hex": hex(&p.id),
                    "addr": p.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
                    "data_b64": base64::engine::general_purpose::STANDARD.encode(&p.data),
                    "last_seen_ms_ago": now.saturating_duration_since(p.last_rx).as_millis() as u64,
                })
            })
            .collect();
        out.write(string_out(serde_json::Value::Array(list).to_string()));
        Ok(())
    })
}

/// The next datagram no handler took, waiting up to `timeout_ms` (0: do not wait; negative: until
/// one comes or the node closes). None in time: NORMAN_NO_EVENT; node closed: NORMAN_CLOSED.
///
/// Ownership: `*msg_out` receives an owned message (free it with `norman_msg_free`).
/// Threads: any thread; with a non-zero timeout not the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_next(
    n: *const norman_msg_node,
    timeout_ms: i32,
    msg_out: *mut *mut norman_msg,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let n = unsafe { arg(n, "node") }?;
        let out = unsafe { Out::new(msg_out, "msg_out") }?;
        let closed = || FfiError::new(NORMAN_CLOSED, "the node is closed");
        let recv = async {
            let mut rx = n.inbox.lock().await;
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(_) if n.node.is_closed() => None,
                Err(_) => rx.recv().await,
            }
        };
        let got = if timeout_ms == 0 {
            let _ctx = n.shared.handle.enter();
            recv.now_or_never().ok_or_else(|| FfiError::new(NORMAN_NO_EVENT, "no datagram"))?
        } else {
            if on_callback_thread() {
                return Err(FfiError::new(
                    NORMAN_ERROR_WRONG_THREAD,
                    "next must not wait on the callback thread",
                ));
            }
            let wait = deadline(timeout_ms);
            let node = n.node.clone();
            n.shared.block_on(None, async move {
                let stopped = async {
                    while !node.is_closed() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! {
                    m = tokio::time::timeout(wait, recv) => m.map_err(|_| FfiError::new(NORMAN_NO_EVENT, "no datagram within the timeout")),
                    _ = stopped => Ok(None),
                }
            })?
        };
        out.write(owned_msg(got.ok_or_else(closed)?));
        Ok(())
    })
}

/// Closes the node (DISCONNECT multicast first when managing peers); waiting requests and
/// `norman_msg_node_next` return NORMAN_CLOSED, later sends too. Idempotent.
///
/// Ownership: nothing transferred; still free the handle. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_close(n: *const norman_msg_node) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked.
        close(unsafe { arg(n, "node") }?);
        Ok(())
    })
}

/// Closes and frees the node; each handler's userdata_free runs once, after its last call. Free it
/// before its client. NULL is a no-op.
///
/// Ownership: consumes `n`. Threads: any thread, not concurrently with other calls on `n`.
#[no_mangle]
pub unsafe extern "C" fn norman_msg_node_free(n: *mut norman_msg_node) {
    // SAFETY: the pointer came from norman_msg_node_new and is not used again.
    guard_value((), || drop(unsafe { take_handle(n) }))
}
