//! `norman_response`: the generic request to any route, and the typed status-flag helper.

use std::ffi::{c_char, c_void};

use reqwest::Method;

use super::boundary::*;
use super::client::{norman_client, start, Mode};
use super::events::{norman_callback, norman_event_kind, norman_userdata_free, Completion, Outcome};
use crate::http::HttpClient;
use crate::objects::{entity_state, EntityState, StatusFlag};

/// A response to `norman_client_request` (opaque): status and body.
pub struct norman_response {
    status: u16,
    body: Vec<u8>,
}

/// Where an entity stands, judged from all its status flags (PROTOCOL.md §2).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum norman_entity_state {
    /// Not every flag is Finished yet (or there are no flags yet).
    NORMAN_ENTITY_PENDING = 0,
    /// Every flag is Finished.
    NORMAN_ENTITY_DONE = 1,
    /// Some flag is Error.
    NORMAN_ENTITY_FAILED = 2,
}

struct Prepared {
    method: Method,
    route: String,
    body: Option<serde_json::Value>,
}

/// # Safety
/// The strings are NULL or NUL-terminated.
unsafe fn prepare(
    method: *const c_char,
    route: *const c_char,
    json_body: *const c_char,
) -> FfiResult<Prepared> {
    // SAFETY: forwarded contract.
    let method = unsafe { arg_str(method, "method") }?;
    let route = unsafe { arg_str(route, "route") }?.to_owned();
    let body = unsafe { opt_str(json_body, "json_body") }?;
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "HEAD" => Method::HEAD,
        other => return Err(FfiError::invalid(format!("unsupported HTTP method {other:?}"))),
    };
    let body = match body {
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            FfiError::new(NORMAN_ERROR_INVALID_JSON, format!("json_body does not parse: {e}"))
        })?),
        None => None,
    };
    Ok(Prepared { method, route, body })
}

/// Both forms of request: map the arguments, send.
///
/// # Safety
/// The pointers are NULL or valid as the exported functions document.
unsafe fn request(
    client: *const norman_client,
    method: *const c_char,
    route: *const c_char,
    json_body: *const c_char,
    mode: Mode,
) -> FfiResult<Outcome> {
    // SAFETY: forwarded contract.
    let client = unsafe { arg(client, "client") }?;
    let p = unsafe { prepare(method, route, json_body) }?;
    let http = client.shared().http()?;
    client.shared().run(mode, async move {
        let (status, body) = http.request(p.method, &p.route, p.body.as_ref()).await?;
        Ok(Outcome { status, body: body.to_vec(), ..Outcome::default() })
    })
}

/// Sends `method` (GET, POST, PUT, PATCH, DELETE, HEAD) to `route` under the base URL with the
/// client's token and an optional JSON body (NULL: no body; NORMAN_ERROR_INVALID_JSON when it does
/// not parse). Any answer, 2xx or not, is NORMAN_OK with its status in the response; transport
/// failures are errors (NORMAN_ERROR_CONNECT, NORMAN_ERROR_TIMEOUT, ...). `route` is a path under
/// the base URL: one that would leave it (an absolute URL, another host, `..` above the base path)
/// is NORMAN_ERROR_INVALID_ARGUMENT and nothing is sent, so the token reaches no other origin.
///
/// Ownership: the strings are borrowed and copied; `*response_out` receives a new response, free
/// it with `norman_response_free`.
/// Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_request(
    client: *const norman_client,
    method: *const c_char,
    route: *const c_char,
    json_body: *const c_char,
    response_out: *mut *mut norman_response,
) -> norman_result {
    guard(|| {
        // SAFETY: NULL checked; validity is the caller's contract.
        let out = unsafe { Out::new(response_out, "response_out") }?;
        let Outcome { status, body, .. } =
            unsafe { request(client, method, route, json_body, Mode::Blocking) }?;
        out.write(into_handle(norman_response { status, body }));
        Ok(())
    })
}

/// Starts `norman_client_request` and returns at once with `*op_id_out` (may be NULL). Completion:
/// one NORMAN_EVENT_REQUEST event (`norman_event_http_status`, `norman_event_body`) to `callback` on
/// the callback thread, or to `norman_client_next_event` when `callback` is NULL.
///
/// Ownership: strings borrowed and copied; `userdata` freed with `userdata_free` (may be NULL)
/// exactly once after the completion was delivered, even when this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_request_async(
    client: *const norman_client,
    method: *const c_char,
    route: *const c_char,
    json_body: *const c_char,
    callback: norman_callback,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
    op_id_out: *mut u64,
) -> norman_result {
    start(Completion { callback, userdata, userdata_free }, |completion| {
        let mode = Mode::Async { kind: norman_event_kind::NORMAN_EVENT_REQUEST, completion, op_id_out };
        // SAFETY: forwarded contract.
        unsafe { request(client, method, route, json_body, mode) }.map(drop)
    })
}

/// HTTP status of a response (0 for NULL).
///
/// Ownership: `response` is borrowed. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_response_status(response: *const norman_response) -> u16 {
    // SAFETY: NULL or a live response.
    guard_value(0, || unsafe { response.as_ref() }.map_or(0, |r| r.status))
}

/// Body of a response: `*body_out` and `*len_out` receive a pointer and length (not NUL-terminated).
///
/// Ownership: the body is borrowed from the response, valid until `norman_response_free`.
/// Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_response_body(
    response: *const norman_response,
    body_out: *mut *const u8,
    len_out: *mut usize,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let response = unsafe { arg(response, "response") }?;
        let body = unsafe { Out::new(body_out, "body_out") }?;
        let len = unsafe { Out::new(len_out, "len_out") }?;
        body.write(response.body.as_ptr());
        len.write(response.body.len());
        Ok(())
    })
}

/// Frees a response. NULL is a no-op.
///
/// Ownership: consumes `response`. Threads: any thread, once.
#[no_mangle]
pub unsafe extern "C" fn norman_response_free(response: *mut norman_response) {
    // SAFETY: the pointer came from norman_client_request and is not used again.
    guard_value((), || drop(unsafe { take_handle(response) }))
}

fn to_c(state: EntityState) -> norman_entity_state {
    match state {
        EntityState::Done => norman_entity_state::NORMAN_ENTITY_DONE,
        EntityState::Failed => norman_entity_state::NORMAN_ENTITY_FAILED,
        EntityState::Pending => norman_entity_state::NORMAN_ENTITY_PENDING,
    }
}

async fn fetch_state(http: &HttpClient, entity_id: &str) -> FfiResult<norman_entity_state> {
    let flags = http.status_flags().get_flags_of(&[entity_id]).await?;
    let none: Vec<StatusFlag> = Vec::new();
    Ok(to_c(entity_state(flags.get(entity_id).unwrap_or(&none))))
}

/// Both forms of entity_state.
///
/// # Safety
/// The pointers are NULL or valid as the exported functions document.
unsafe fn entity_state_op(
    client: *const norman_client,
    entity_id: *const c_char,
    mode: Mode,
) -> FfiResult<Outcome> {
    // SAFETY: forwarded contract.
    let client = unsafe { arg(client, "client") }?;
    let entity_id = unsafe { arg_str(entity_id, "entity_id") }?.to_owned();
    let http = client.shared().http()?;
    client.shared().run(mode, async move {
        Ok(Outcome { state: fetch_state(&http, &entity_id).await?, ..Outcome::default() })
    })
}

/// Fetches the status flags of one entity (`persist/flags/get`) and says whether it is done, failed
/// or pending (see `norman_entity_state`).
///
/// Ownership: `entity_id` is borrowed. Threads: blocking; not on the callback thread or a runtime worker.
#[no_mangle]
pub unsafe extern "C" fn norman_client_entity_state(
    client: *const norman_client,
    entity_id: *const c_char,
    state_out: *mut norman_entity_state,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let out = unsafe { Out::new(state_out, "state_out") }?;
        out.write(unsafe { entity_state_op(client, entity_id, Mode::Blocking) }?.state);
        Ok(())
    })
}

/// Starts `norman_client_entity_state` and returns at once; completion: one
/// NORMAN_EVENT_ENTITY_STATE event (`norman_event_entity_state`).
///
/// Ownership: `entity_id` borrowed and copied; `userdata` freed with `userdata_free` (may be NULL)
/// exactly once after the completion was delivered, even when this call fails.
/// Threads: any thread, including the callback thread.
#[no_mangle]
pub unsafe extern "C" fn norman_client_entity_state_async(
    client: *const norman_client,
    entity_id: *const c_char,
    callback: norman_callback,
    userdata: *mut c_void,
    userdata_free: norman_userdata_free,
    op_id_out: *mut u64,
) -> norman_result {
    start(Completion { callback, userdata, userdata_free }, |completion| {
        let mode = Mode::Async { kind: norman_event_kind::NORMAN_EVENT_ENTITY_STATE, completion, op_id_out };
        // SAFETY: forwarded contract.
        unsafe { entity_state_op(client, entity_id, mode) }.map(drop)
    })
}

/// Judges a status-flag list without a network: `flags_json` is a JSON array of StatusFlag objects
/// (or the `{entity_id: [StatusFlag]}` map of `persist/flags/get` for one entity).
///
/// Ownership: `flags_json` is borrowed. Threads: any thread.
#[no_mangle]
pub unsafe extern "C" fn norman_entity_state_of_flags(
    flags_json: *const c_char,
    state_out: *mut norman_entity_state,
) -> norman_result {
    guard(|| {
        // SAFETY: as above.
        let json = unsafe { arg_str(flags_json, "flags_json") }?;
        let out = unsafe { Out::new(state_out, "state_out") }?;
        let bad = |e: serde_json::Error| FfiError::new(NORMAN_ERROR_INVALID_JSON, format!("flags_json: {e}"));
        let value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        let flags: Vec<StatusFlag> = match value {
            serde_json::Value::Object(map) => {
                let mut all = Vec::new();
                for (_, list) in map {
                    all.extend(serde_json::from_value::<Vec<StatusFlag>>(list).map_err(bad)?);
                }
                all
            }
            other => serde_json::from_value(other).map_err(bad)?,
        };
        out.write(to_c(entity_state(&flags)));
        Ok(())
    })
}
