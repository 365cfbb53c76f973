//! The SQLite store: one connection behind a mutex, used only from blocking threads. Each object is
//! kept as its JSON plus the columns queries filter and sort on.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::http::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, creation_time TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS accounts_name ON accounts(name);
CREATE TABLE IF NOT EXISTS passwords (
    account_id TEXT PRIMARY KEY, hash TEXT NOT NULL, update_time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emails (
    email TEXT PRIMARY KEY, account_id TEXT NOT NULL, verified INTEGER NOT NULL DEFAULT 0,
    creation_time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS emails_account ON emails(account_id);
CREATE TABLE IF NOT EXISTS otps (
    email TEXT PRIMARY KEY, code_hash TEXT NOT NULL, expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL, kind TEXT NOT NULL, creation_time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_account ON tokens(account_id);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL, creation_time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account_id);
CREATE TABLE IF NOT EXISTS model_bases (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, creation_time TEXT NOT NULL,
    json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS model_bases_account ON model_bases(account_id);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, model_base_id TEXT NOT NULL, name TEXT NOT NULL,
    creation_time TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS models_account ON models(account_id);
CREATE INDEX IF NOT EXISTS models_base ON models(model_base_id);
CREATE TABLE IF NOT EXISTS invocations (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, model_id TEXT NOT NULL, creation_time TEXT NOT NULL,
    json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invocations_account ON invocations(account_id);
CREATE INDEX IF NOT EXISTS invocations_model ON invocations(model_id);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, entity_id TEXT NOT NULL, creation_time TEXT NOT NULL,
    json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notifications_account ON notifications(account_id);
CREATE TABLE IF NOT EXISTS status_flags (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, entity_id TEXT NOT NULL, entity_type TEXT NOT NULL,
    flag_name TEXT NOT NULL, flag_value INTEGER NOT NULL, update_time TEXT NOT NULL,
    UNIQUE (entity_id, flag_name));
CREATE INDEX IF NOT EXISTS status_flags_account ON status_flags(account_id);
CREATE TABLE IF NOT EXISTS pairings (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, kind TEXT NOT NULL, entity_id TEXT NOT NULL,
    model_id TEXT NOT NULL, invocation_id TEXT, file_size INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    state TEXT NOT NULL, detail TEXT, creation_time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    kind TEXT NOT NULL, entity_id TEXT NOT NULL, account_id TEXT NOT NULL, model_id TEXT NOT NULL,
    invocation_id TEXT, file_name TEXT NOT NULL, size INTEGER NOT NULL, checksum TEXT NOT NULL,
    creation_time TEXT NOT NULL, PRIMARY KEY (kind, entity_id));
CREATE TABLE IF NOT EXISTS downloads (
    entity_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, entity_type TEXT NOT NULL, state TEXT NOT NULL,
    downloaded_bytes INTEGER NOT NULL DEFAULT 0, total_bytes INTEGER NOT NULL DEFAULT 0,
    file_checksum TEXT NOT NULL DEFAULT '', detail TEXT, json TEXT NOT NULL, update_time TEXT NOT NULL);
";

impl Db {
    pub async fn open(path: &Path) -> Result<Self, String> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
            conn.execute_batch(SCHEMA).map_err(|e| format!("{}: creating tables: {e}", path.display()))?;
            Ok::<_, String>(conn)
        })
        .await
        .map_err(|e| format!("opening the database: {e}"))??;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on a blocking thread (SQLite calls block; async workers must not).
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> ApiResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves the connection usable: SQLite rolls back
            // an unfinished transaction when its guard drops.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::internal(format!("database task: {e}")))?
    }

    /// Runs `f` inside one transaction: committed if it returns Ok, rolled back otherwise.
    pub async fn tx<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> ApiResult<T> + Send + 'static,
    {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

/// Now as RFC 3339 UTC with microseconds and `Z`, the form the Python objects emit.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Milliseconds since the Unix epoch (for expiry times).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Parses a stored JSON column.
pub fn parse(text: &str) -> ApiResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("stored JSON is corrupt: {e}")))
}
