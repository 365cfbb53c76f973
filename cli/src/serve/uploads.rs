//! File push (PROTOCOL.md §3-4): pairing allocates a one-connection upload socket streaming into a
//! temporary file; `complete` compares the client's checksum with what arrived and only then makes
//! the file visible. A failed receive is recorded at once (pairing failed or expired, flags Error) by
//! the receiving task itself, so flags are right even if the client never calls `complete`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use norman::streaming::PartFile;
use norman::Checksum;
use norman_cli::receiver::{generate_secrets, ReceiveOptions, Received, UploadReceiver};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};

use super::auth::Auth;
use super::db::{new_id, now, now_ms};
use super::http::{item_by_id, json, object, req_str, ApiError, ApiResult, JsonBody, RawJson};
use super::models::load_model;
use super::store::{self, Kind, Target};
use super::AppState;

/// How long `complete` waits for a stream that has not ended yet.
const COMPLETE_WAIT: Duration = Duration::from_secs(60);
/// A connected client that sends nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const HEADER_LEN: usize = 32;
const RECEIVE_BUFFER: usize = 256 * 1024;
/// What the receiver says while it waits for the connection (see `UploadReceiver::receive`).
const ACCEPT_DURING: &str = "waiting for the upload connection";

type ReceiveResult = norman::Result<(PartFile, Received)>;

/// A pairing whose socket is open or whose stream awaits `complete`.
pub struct PendingUpload {
    target: Target,
    size: u64,
    file_name: String,
    expires_at: Instant,
    task: tokio::task::JoinHandle<ReceiveResult>,
}

/// How a pairing ended badly: its stored state, the HTTP answer to `complete`, and why.
struct Failure {
    state: &'static str,
    status: StatusCode,
    detail: String,
}

impl Failure {
    fn error(&self) -> ApiError {
        ApiError::new(self.status, self.detail.clone())
    }
}

fn classify(e: &norman::Error, ttl: Duration) -> Failure {
    match e {
        norman::Error::Timeout { during, .. } if *during == ACCEPT_DURING => Failure {
            state: "expired",
            status: StatusCode::GONE,
            detail: format!("pairing expired: no upload connection within {} s", ttl.as_secs()),
        },
        other => Failure {
            state: "failed",
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: format!("upload failed, nothing was stored: {other}"),
        },
    }
}

fn size_field(obj: &serde_json::Map<String, Value>) -> ApiResult<u64> {
    obj.get("file_size_in_bytes")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::unprocessable("field `file_size_in_bytes` must be a non-negative integer"))
}

/// The host clients should connect to: the listen IP, or the host they reached us at when the
/// server listens on all addresses.
fn socket_host(state: &AppState, headers: &HeaderMap) -> String {
    if !state.listen_ip.is_unspecified() {
        return state.listen_ip.to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    if host.is_empty() {
        "127.0.0.1".into()
    } else {
        host.to_owned()
    }
}

pub async fn pair_asset(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let obj = object(&body, "SocketAssetPairingRequest")?;
    auth.check_field(obj)?;
    let model_id = req_str(obj, "model_id")?.to_owned();
    let asset_id = req_str(obj, "asset_id")?.to_owned();
    let size = size_field(obj)?;
    let account_id = auth.account_id.clone();
    let target = state
        .db
        .call(move |conn| {
            let model = load_model(conn, &account_id, &model_id)?;
            if item_by_id(&model, "assets", &asset_id).is_none() {
                return Err(ApiError::not_found(format!(
                    "asset {asset_id} is not an asset of model {model_id}"
                )));
            }
            Ok(Target { kind: Kind::Asset, account_id, model_id, invocation_id: None, entity_id: asset_id })
        })
        .await?;
    let host = socket_host(&state, &headers);
    pair(state, target, size, host).await
}

pub async fn pair_input(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let obj = object(&body, "SocketInputPairingRequest")?;
    auth.check_field(obj)?;
    let model_id = req_str(obj, "model_id")?.to_owned();
    let invocation_id = req_str(obj, "invocation_id")?.to_owned();
    let input_id = req_str(obj, "input_id")?.to_owned();
    let size = size_field(obj)?;
    let account_id = auth.account_id.clone();
    let target = state
        .db
        .call(move |conn| {
            let invocation = store::load_invocation_of(conn, &account_id, &invocation_id, &model_id)?;
            if item_by_id(&invocation, "inputs", &input_id).is_none() {
                return Err(ApiError::not_found(format!(
                    "input {input_id} is not an input of invocation {invocation_id}"
                )));
            }
            Ok(Target {
                kind: Kind::Input,
                account_id,
                model_id,
                invocation_id: Some(invocation_id),
                entity_id: input_id,
            })
        })
        .await?;
    let host = socket_host(&state, &headers);
    pair(state, target, size, host).await
}

async fn pair(state: AppState, target: Target, size: u64, host: String) -> ApiResult<RawJson> {
    let secrets = generate_secrets(HEADER_LEN);
    let ttl = state.pairing_ttl;
    let options = ReceiveOptions {
        expected_size: Some(size),
        max_size: size,
        accept_timeout: ttl,
        idle_timeout: IDLE_TIMEOUT,
        buffer_size: RECEIVE_BUFFER,
    };
    let receiver = UploadReceiver::bind((state.listen_ip, 0), secrets.clone(), options)
        .await
        .map_err(|e| ApiError::internal(format!("cannot open an upload socket: {e}")))?;
    let port = receiver.local_addr().map_err(|e| ApiError::internal(e.to_string()))?.port();
    let pairing_id = new_id();
    let file_name = new_id();

    let (id, t) = (pairing_id.clone(), target.clone());
    let expires_ms = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    state
        .db
        .tx(move |conn| {
            conn.execute(
                "INSERT INTO pairings (id, account_id, kind, entity_id, model_id, invocation_id, file_size, expires_at, \
                 state, creation_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open', ?9)",
                params![
                    id,
                    t.account_id,
                    t.kind.as_str(),
                    t.entity_id,
                    t.model_id,
                    t.invocation_id,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    expires_ms,
                    now()
                ],
            )?;
            store::start_transfer(conn, &t)
        })
        .await?;

    let dest = state.blobs.join(&file_name);
    let task = tokio::spawn(receive(state.clone(), receiver, dest, pairing_id.clone(), target.clone()));
    let pending = PendingUpload { target, size, file_name, expires_at: Instant::now() + ttl, task };
    lock(&state).insert(pairing_id.clone(), pending);

    let response = secrets.to_response(&pairing_id, &host, port);
    Ok(json(serde_json::to_value(response).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// The receiving task: streams into a temporary file; a failure is recorded right away.
async fn receive(
    state: AppState,
    receiver: UploadReceiver,
    dest: PathBuf,
    pairing_id: String,
    target: Target,
) -> ReceiveResult {
    let result = receiver.receive_to_part_file(&dest).await;
    if let Err(e) = &result {
        record_failure(&state, &pairing_id, &target, &classify(e, state.pairing_ttl)).await;
    }
    result
}

async fn record_failure(state: &AppState, pairing_id: &str, target: &Target, failure: &Failure) {
    let (id, target, pairing_state, detail) =
        (pairing_id.to_owned(), target.clone(), failure.state, failure.detail.clone());
    let recorded = state
        .db
        .tx(move |conn| {
            conn.execute(
                "UPDATE pairings SET state = ?1, detail = ?2 WHERE id = ?3 AND state = 'open'",
                params![pairing_state, detail, id],
            )?;
            store::fail_transfer(conn, &target, &detail)
        })
        .await;
    if let Err(e) = recorded {
        eprintln!("norman serve: recording a failed upload: {}", e.detail);
    }
}

fn lock(state: &AppState) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, PendingUpload>> {
    // The map holds no invariant a panicking holder could break half-way.
    state.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// POST file-push/socket/complete {pairing_id, checksum}.
pub async fn complete(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let obj = object(&body, "ChecksumRequest")?;
    let pairing_id = req_str(obj, "pairing_id")?.to_owned();
    let checksum: Checksum = req_str(obj, "checksum")?
        .parse()
        .map_err(|_| ApiError::unprocessable("field `checksum` must be 16 hex digits (xxh3-64)"))?;
    let pending = {
        let mut map = lock(&state);
        match map.get(&pairing_id) {
            Some(p) if p.target.account_id == auth.account_id => map.remove(&pairing_id),
            _ => None,
        }
    };
    let Some(mut pending) = pending else {
        return Err(closed_pairing(&state, &auth, pairing_id).await);
    };

    let (part, received) = match tokio::time::timeout(COMPLETE_WAIT, &mut pending.task).await {
        Ok(Ok(Ok(done))) => done,
        // Already recorded by the receiving task.
        Ok(Ok(Err(e))) => return Err(classify(&e, state.pairing_ttl).error()),
        Ok(Err(join)) => {
            let failure = Failure {
                state: "failed",
                status: StatusCode::INTERNAL_SERVER_ERROR,
                detail: format!("the receiving task failed: {join}"),
            };
            record_failure(&state, &pairing_id, &pending.target, &failure).await;
            return Err(failure.error());
        }
        Err(_) => {
            pending.task.abort();
            let failure = Failure {
                state: "failed",
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: format!(
                    "the upload did not end within {} s of complete; nothing was stored",
                    COMPLETE_WAIT.as_secs()
                ),
            };
            record_failure(&state, &pairing_id, &pending.target, &failure).await;
            return Err(failure.error());
        }
    };

    if received.checksum != checksum || received.bytes != pending.size {
        drop(part);
        let failure = Failure {
            state: "failed",
            status: StatusCode::CONFLICT,
            detail: format!(
                "checksum mismatch: the client sent {checksum}, the server received {} bytes with checksum {}; \
                 nothing was stored",
                received.bytes, received.checksum
            ),
        };
        record_failure(&state, &pairing_id, &pending.target, &failure).await;
        return Err(failure.error());
    }

    let dest = state.blobs.join(&pending.file_name);
    if let Err(e) = part.commit(&dest).await {
        let failure = Failure {
            state: "failed",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: format!("storing the file: {e}"),
        };
        record_failure(&state, &pairing_id, &pending.target, &failure).await;
        return Err(failure.error());
    }
    let (blobs, target, file_name, id) =
        (state.blobs.clone(), pending.target.clone(), pending.file_name.clone(), pairing_id.clone());
    let sum = checksum.to_hex();
    let finished = state
        .db
        .tx(move |conn| {
            conn.execute("UPDATE pairings SET state = 'completed' WHERE id = ?1", [&id])?;
            store::finish_transfer(conn, &blobs, &target, &file_name, received.bytes, &sum)
        })
        .await;
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&dest);
        return Err(e);
    }
    Ok(json(json!({
        "pairing_id": pairing_id,
        "entity_id": pending.target.entity_id,
        "file_size_in_bytes": received.bytes,
        "checksum": checksum.to_hex(),
        "status": "Finished",
    })))
}

/// Why `complete` cannot use a pairing that is no longer pending.
async fn closed_pairing(state: &AppState, auth: &Auth, pairing_id: String) -> ApiError {
    let account_id = auth.account_id.clone();
    let id = pairing_id.clone();
    let row = state
        .db
        .call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT state, detail FROM pairings WHERE id = ?1 AND account_id = ?2",
                    [&id, &account_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
                )
                .optional()?)
        })
        .await;
    match row {
        Err(e) => e,
        Ok(None) => ApiError::not_found(format!("unknown pairing {pairing_id}")),
        Ok(Some((pairing_state, detail))) => {
            let detail = detail.unwrap_or_default();
            match pairing_state.as_str() {
                "completed" => ApiError::conflict(format!("pairing {pairing_id} was already completed")),
                "expired" => ApiError::gone(format!("pairing {pairing_id} is no longer usable: {detail}")),
                "open" => {
                    ApiError::conflict(format!("pairing {pairing_id} is being completed by another request"))
                }
                _ => ApiError::conflict(format!("pairing {pairing_id} already failed: {detail}")),
            }
        }
    }
}

/// Forgets pairings past their TTL whose stream ended (failed ones are already recorded; a stream
/// that arrived but was never completed within another TTL is dropped and recorded as expired).
pub async fn reap_expired(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = (state.pairing_ttl / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let ttl = state.pairing_ttl;
        let reaped: Vec<(String, PendingUpload)> = {
            let mut map = lock(&state);
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, p)| p.task.is_finished() && now >= p.expires_at + ttl)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| map.remove(&id).map(|p| (id, p))).collect()
        };
        for (id, pending) in reaped {
            if let Ok(Ok(_unclaimed)) = pending.task.await {
                let failure = Failure {
                    state: "expired",
                    status: StatusCode::GONE,
                    detail: "the upload arrived but was never completed".into(),
                };
                record_failure(&state, &id, &pending.target, &failure).await;
            }
        }
    }
}

/// After an account is deleted: stops its receives (their temporary files are deleted).
pub fn abandon_account(state: &AppState, account_id: &str) {
    lock(state).retain(|_, pending| {
        let keep = pending.target.account_id != account_id;
        if !keep {
            pending.task.abort();
        }
        keep
    });
}

/// At shutdown: stops every receive (their temporary files are deleted); the next start marks the
/// pairings expired.
pub fn abandon_all(state: &AppState) {
    for (_, pending) in lock(state).drain() {
        pending.task.abort();
    }
}
