//! File push (PROTOCOL.md §3-4). All pairings share one upload listener, whose port each pairing
//! response names: a pairing costs no socket and no file until its connection arrives. Each accepted
//! connection must send its fixed-length encrypted authentication header within a deadline; the
//! pairing whose key and nonce decrypt it to its header (compared in constant time) claims the
//! connection, and only then is its temporary file created. `complete` compares the client's checksum
//! with what arrived and only then makes the file visible. A failed receive is recorded at once
//! (pairing failed or expired, flags Error) by the pairing's task, so flags are right even if the
//! client never calls `complete`. Open pairings are capped per account and in all.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use norman::socket::{StreamCipherState, StreamSecrets};
use norman::streaming::PartFile;
use norman::Checksum;
use norman_cli::receiver::{
    generate_secrets, open_header, read_header, receive_stream, ReceiveOptions, Received,
};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::auth::Auth;
use super::db::{new_id, now, now_ms};
use super::http::{item_by_id, json, object, req_str, ApiError, ApiResult, JsonBody, RawJson};
use super::models::load_model;
use super::store::{self, Kind, Target};
use super::AppState;

/// How long `complete` waits for a stream that has not ended yet.
const COMPLETE_WAIT: Duration = Duration::from_secs(60);
/// How long `complete` waits for a pairing's connection to be claimed (the client has sent it by
/// then; it may still be in the accept queue or the handshake).
const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// A connected client that sends nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection must send its whole authentication header within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections still sending their header at once; more wait in the listen backlog.
const MAX_HANDSHAKES: usize = 128;
/// Open pairings of all accounts together (each costs a header check per connection).
const MAX_OPEN_PAIRINGS: usize = 4096;
/// Every pairing's header has this length, so the shared listener knows how much to read.
const HEADER_LEN: usize = 32;
const RECEIVE_BUFFER: usize = 256 * 1024;
/// What the pairing's task says when no connection claimed it in time.
const ACCEPT_DURING: &str = "waiting for the upload connection";

type ReceiveResult = norman::Result<(PartFile, Received, OpenSlot)>;

/// A pairing whose connection is awaited, streaming, or whose stream awaits `complete`.
pub struct PendingUpload {
    target: Target,
    size: u64,
    file_name: String,
    expires_at: Instant,
    /// Set once a connection authenticated as this pairing.
    claimed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ReceiveResult>,
}

/// A pairing waiting for its connection: what the shared listener matches connections against.
struct Waiting {
    secrets: StreamSecrets,
    deliver: oneshot::Sender<(TcpStream, StreamCipherState, SocketAddr)>,
}

/// The upload side shared by all pairings.
pub struct Hub {
    port: u16,
    max_per_account: usize,
    pending: Mutex<HashMap<String, PendingUpload>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    /// Open pairings per account (see [`OpenSlot`]).
    open: Mutex<HashMap<String, usize>>,
    handshakes: Arc<Semaphore>,
    /// Connections accepted whose header is still being read.
    handshaking: AtomicUsize,
    /// Threads that decrypt one upload (NORMAN_CIPHER_THREADS, default: the machine's cores).
    cipher_threads: usize,
}

/// One open pairing counted against its account's cap, for as long as it can still be completed:
/// held by the pairing's task, handed over with a received stream, freed when dropped.
pub struct OpenSlot {
    hub: Arc<Hub>,
    account_id: String,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.hub.open);
        if let Some(n) = open.get_mut(&self.account_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.account_id);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold no invariant a panicking holder could break half-way.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Binds the shared upload listener on `ip` (a free port).
    pub async fn bind(ip: IpAddr, max_per_account: usize) -> Result<(Arc<Hub>, TcpListener), String> {
        let listener =
            TcpListener::bind((ip, 0)).await.map_err(|e| format!("cannot open the upload listener: {e}"))?;
        let port =
            listener.local_addr().map_err(|e| format!("reading the upload listener's address: {e}"))?.port();
        let hub = Hub {
            port,
            max_per_account: max_per_account.max(1),
            pending: Mutex::default(),
            waiting: Mutex::default(),
            open: Mutex::default(),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            handshaking: AtomicUsize::new(0),
            cipher_threads: norman_cli::receiver::cipher_threads(None)?,
        };
        Ok((Arc::new(hub), listener))
    }

    /// Counts a new pairing of `account_id`, or refuses it when the account or the server is full.
    fn reserve(self: &Arc<Self>, account_id: &str, ttl: Duration) -> ApiResult<OpenSlot> {
        let mut open = lock(&self.open);
        let mine = open.get(account_id).copied().unwrap_or(0);
        if mine >= self.max_per_account {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this account has {mine} open upload pairings, the most allowed: complete them, or wait \
                     for unused ones to expire ({} s after pairing)",
                    ttl.as_secs()
                ),
            ));
        }
        if open.values().sum::<usize>() >= MAX_OPEN_PAIRINGS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the server has {MAX_OPEN_PAIRINGS} open upload pairings, the most it allows: try again later"),
            ));
        }
        *open.entry(account_id.to_owned()).or_insert(0) += 1;
        Ok(OpenSlot { hub: self.clone(), account_id: account_id.to_owned() })
    }

    /// The waiting pairing whose secrets open `encrypted`, removed from the waiting ones.
    fn claim(&self, encrypted: &[u8]) -> Option<(Waiting, StreamCipherState)> {
        let mut waiting = lock(&self.waiting);
        let found = waiting
            .iter()
            .find_map(|(id, w)| open_header(&w.secrets, encrypted).map(|state| (id.clone(), state)));
        let (id, state) = found?;
        waiting.remove(&id).map(|w| (w, state))
    }
}

/// The shared upload listener: each connection gets a handshake task, at most [`MAX_HANDSHAKES`] at
/// once (the rest wait in the kernel's backlog, holding no descriptor of ours).
pub async fn accept_uploads(
    hub: Arc<Hub>,
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            permit = hub.handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((conn, peer)) => {
                hub.handshaking.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(handshake(hub.clone(), conn, peer, permit));
            }
            // Out of descriptors or the like: let some connections finish before trying again.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Reads a connection's authentication header and hands the connection to the pairing it opens;
/// a connection no pairing claims is closed.
async fn handshake(hub: Arc<Hub>, mut conn: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
    let header = read_header(&mut conn, HEADER_LEN, HANDSHAKE_TIMEOUT).await;
    hub.handshaking.fetch_sub(1, Ordering::AcqRel);
    drop(permit);
    let Ok(encrypted) = header else { return };
    if let Some((waiting, state)) = hub.claim(&encrypted) {
        // The pairing's task may have just expired: then the connection closes here.
        let _ = waiting.deliver.send((conn, state, peer));
    }
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
    let ttl = state.pairing_ttl;
    // Counted before anything is allocated; the slot frees itself if pairing fails below.
    let slot = state.uploads.reserve(&target.account_id, ttl)?;
    let secrets = generate_secrets(HEADER_LEN);
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

    let (deliver, delivered) = oneshot::channel();
    let claimed = Arc::new(AtomicBool::new(false));
    let dest = state.blobs.join(&file_name);
    let receiving = Receiving {
        state: state.clone(),
        delivered,
        claimed: claimed.clone(),
        dest,
        size,
        pairing_id: pairing_id.clone(),
        target: target.clone(),
        slot,
        secrets: secrets.clone(),
    };
    {
        // Both maps before the task runs, so neither its expiry nor a connection can miss them.
        let mut pending = lock(&state.uploads.pending);
        lock(&state.uploads.waiting)
            .insert(pairing_id.clone(), Waiting { secrets: secrets.clone(), deliver });
        let task = tokio::spawn(receive(receiving));
        let expires_at = Instant::now() + ttl;
        pending
            .insert(pairing_id.clone(), PendingUpload { target, size, file_name, expires_at, claimed, task });
    }

    let response = secrets.to_response(&pairing_id, &host, state.uploads.port);
    Ok(json(serde_json::to_value(response).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// What a pairing's task needs.
struct Receiving {
    state: AppState,
    delivered: oneshot::Receiver<(TcpStream, StreamCipherState, SocketAddr)>,
    claimed: Arc<AtomicBool>,
    dest: PathBuf,
    size: u64,
    pairing_id: String,
    target: Target,
    slot: OpenSlot,
    /// For the parallel decryption (the delivered cipher state continues one thread's keystream).
    secrets: StreamSecrets,
}

/// A pairing's task: waits for its connection until the TTL, then streams into a temporary file
/// (created only now); a failure is recorded right away.
async fn receive(r: Receiving) -> ReceiveResult {
    let ttl = r.state.pairing_ttl;
    let result = match tokio::time::timeout(ttl, r.delivered).await {
        Ok(Ok((mut conn, cipher, peer))) => {
            r.claimed.store(true, Ordering::Release);
            let options = ReceiveOptions {
                expected_size: Some(r.size),
                max_size: r.size,
                accept_timeout: ttl,
                idle_timeout: IDLE_TIMEOUT,
                buffer_size: RECEIVE_BUFFER,
                cipher_threads: r.state.uploads.cipher_threads,
            };
            stream_to_part_file(&mut conn, &r.secrets, cipher, &options, &r.dest)
                .await
                .map(|(part, bytes, checksum)| (part, Received { bytes, checksum, peer }, r.slot))
        }
        // `complete` gave the pairing up (no connection claimed it) and records that itself.
        Ok(Err(_)) => return Err(norman::Error::AuthHeaderMismatch),
        Err(_) => {
            lock(&r.state.uploads.waiting).remove(&r.pairing_id);
            Err(norman::Error::Timeout { during: ACCEPT_DURING, after_ms: ttl.as_millis() })
        }
    };
    if let Err(e) = &result {
        record_failure(&r.state, &r.pairing_id, &r.target, &classify(e, ttl)).await;
    }
    result
}

async fn stream_to_part_file(
    conn: &mut TcpStream,
    secrets: &StreamSecrets,
    cipher: StreamCipherState,
    options: &ReceiveOptions,
    dest: &std::path::Path,
) -> norman::Result<(PartFile, u64, Checksum)> {
    let mut part = PartFile::create_beside(dest).await?;
    let (bytes, checksum) = receive_stream(conn, secrets, cipher, options, part.writer()).await?;
    Ok((part, bytes, checksum))
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
        let mut map = lock(&state.uploads.pending);
        match map.get(&pairing_id) {
            Some(p) if p.target.account_id == auth.account_id => map.remove(&pairing_id),
            _ => None,
        }
    };
    let Some(mut pending) = pending else {
        return Err(closed_pairing(&state, &auth, pairing_id).await);
    };

    // The client sent its stream before calling: give the listener a moment to claim it (longer while
    // handshakes are running: a crowd of slow connections delays it up to their deadline). Whoever
    // takes the pairing off the waiting list decides: a connection, or this give-up.
    let start = Instant::now();
    while !pending.claimed.load(Ordering::Acquire) && !pending.task.is_finished() {
        let waited = start.elapsed();
        let handshaking = state.uploads.handshaking.load(Ordering::Acquire) > 0;
        if waited >= CLAIM_WAIT + HANDSHAKE_TIMEOUT || (waited >= CLAIM_WAIT && !handshaking) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if lock(&state.uploads.waiting).remove(&pairing_id).is_some() {
        pending.task.abort();
        let failure = Failure {
            state: "failed",
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail:
                "upload failed, nothing was stored: no connection sent this pairing's authentication header \
                     (encrypted with its key and nonce)"
                    .into(),
        };
        record_failure(&state, &pairing_id, &pending.target, &failure).await;
        return Err(failure.error());
    }

    let (part, received, _slot) = match tokio::time::timeout(COMPLETE_WAIT, &mut pending.task).await {
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
            let mut map = lock(&state.uploads.pending);
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
    let mut pending = lock(&state.uploads.pending);
    let mut waiting = lock(&state.uploads.waiting);
    pending.retain(|id, p| {
        let keep = p.target.account_id != account_id;
        if !keep {
            p.task.abort();
            waiting.remove(id);
        }
        keep
    });
}

/// At shutdown: stops every receive (their temporary files are deleted); the next start marks the
/// pairings expired.
pub fn abandon_all(state: &AppState) {
    lock(&state.uploads.waiting).clear();
    for (_, pending) in lock(&state.uploads.pending).drain() {
        pending.task.abort();
    }
}
