//! The SQLite store: one connection behind a mutex, used only from blocking threads. Each object is
//! kept as its JSON plus the columns queries filter and sort on.
//!
//! Blob files are replaced and deleted crash-safely: a new file is complete and synced before the
//! row pointing at it commits, and an old file is only named in `trash` by the transaction that
//! stops using it; files named there are removed after that transaction commits (or at the next
//! start, if the process dies first). So a committed row never points at a missing file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::http::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    blobs: Arc<PathBuf>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
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
CREATE TABLE IF NOT EXISTS trash (file_name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downloads (
    entity_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, entity_type TEXT NOT NULL, state TEXT NOT NULL,
    downloaded_bytes INTEGER NOT NULL DEFAULT 0, total_bytes INTEGER NOT NULL DEFAULT 0,
    file_checksum TEXT NOT NULL DEFAULT '', detail TEXT, json TEXT NOT NULL, update_time TEXT NOT NULL);
";

/// Tenant isolation. Clients choose the ids of accounts, models, bases, assets, signatures, inputs,
/// outputs and invocations, and other tables (flags, blobs, downloads) are keyed by those ids
/// without the account. So every id belongs to the first account that used it, for good (deleting
/// the object or the account keeps the claim): a row of another account carrying it is refused
/// (`RAISE` -> 409), and a deleted account's id is never issued again. Triggers enforce this on every
/// write path, whichever handler makes it.
const OWNED_IDS: &str = "
CREATE TABLE IF NOT EXISTS owned_ids (id TEXT PRIMARY KEY, account_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS accounts_claim BEFORE INSERT ON accounts BEGIN
    SELECT RAISE(ABORT, 'norman-taken: this account id is taken (a deleted account is never re-created)')
        WHERE EXISTS (SELECT 1 FROM owned_ids WHERE id = NEW.id);
    INSERT INTO owned_ids (id, account_id) VALUES (NEW.id, NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS model_bases_claim BEFORE INSERT ON model_bases BEGIN
    SELECT RAISE(ABORT, 'norman-taken: this model base id belongs to another account')
        WHERE EXISTS (SELECT 1 FROM owned_ids WHERE id = NEW.id AND account_id != NEW.account_id);
    INSERT OR IGNORE INTO owned_ids (id, account_id) VALUES (NEW.id, NEW.account_id);
END;
";

/// The ids a model or invocation row carries: its own, `other` (a model's base, an invocation's
/// model), and those of its assets and input and output signatures.
fn carried_ids(row: &str, other: &str) -> String {
    let mut sql = format!("SELECT {row}.id AS id UNION SELECT {row}.{other}");
    for list in ["assets", "inputs", "outputs"] {
        sql.push_str(&format!(
            " UNION SELECT json_extract(j.value, '$.id') FROM json_each({row}.json, '$.{list}') j WHERE j.type = 'object'"
        ));
    }
    sql
}

fn ownership_sql() -> String {
    let mut sql = String::from(OWNED_IDS);
    for (table, other) in [("models", "model_base_id"), ("invocations", "model_id")] {
        let ids = carried_ids("NEW", other);
        for (name, event) in [("insert", "INSERT"), ("update", "UPDATE OF json, account_id")] {
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_claim_{name} BEFORE {event} ON {table} BEGIN
    SELECT RAISE(ABORT, 'norman-taken: an id in this request (of a model, model base, asset, signature, input, output or invocation) belongs to another account; choose another id')
        WHERE EXISTS (SELECT 1 FROM owned_ids WHERE account_id != NEW.account_id AND id IN ({ids}));
    INSERT OR IGNORE INTO owned_ids (id, account_id) SELECT id, NEW.account_id FROM ({ids}) WHERE id IS NOT NULL;
END;
"
            ));
        }
    }
    for table in ["status_flags", "blobs", "downloads"] {
        sql.push_str(&format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_owner BEFORE INSERT ON {table} BEGIN
    SELECT RAISE(ABORT, 'norman-taken: this entity id belongs to another account')
        WHERE EXISTS (SELECT 1 FROM owned_ids WHERE id = NEW.entity_id AND account_id != NEW.account_id);
END;
"
        ));
    }
    sql
}

/// Version 1 added `owned_ids`: claims the ids already stored (the oldest row wins).
fn backfill_v1() -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO owned_ids (id, account_id) SELECT id, id FROM accounts ORDER BY rowid;
INSERT OR IGNORE INTO owned_ids (id, account_id) SELECT id, account_id FROM model_bases ORDER BY rowid;\n",
    );
    for (table, other) in [("models", "model_base_id"), ("invocations", "model_id")] {
        let mut rows = format!(
            "SELECT rowid AS r, id, account_id FROM {table} UNION ALL SELECT rowid, {other}, account_id FROM {table}"
        );
        for list in ["assets", "inputs", "outputs"] {
            rows.push_str(&format!(
                " UNION ALL SELECT t.rowid, json_extract(j.value, '$.id'), t.account_id \
                 FROM {table} t, json_each(t.json, '$.{list}') j WHERE j.type = 'object'"
            ));
        }
        sql.push_str(&format!(
            "INSERT OR IGNORE INTO owned_ids (id, account_id) SELECT id, account_id FROM ({rows}) \
             WHERE id IS NOT NULL ORDER BY r;\n"
        ));
    }
    sql.push_str("PRAGMA user_version = 1;");
    sql
}

impl Db {
    /// Opens the database at `path`; `blobs` is the directory of the files `trash` names.
    pub async fn open(path: &Path, blobs: &Path) -> Result<Self, String> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
            conn.execute_batch(SCHEMA).map_err(|e| format!("{}: creating tables: {e}", path.display()))?;
            let version: i64 =
                conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| e.to_string())?;
            let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
            tx.execute_batch(&ownership_sql())
                .map_err(|e| format!("{}: creating triggers: {e}", path.display()))?;
            if version < 1 {
                tx.execute_batch(&backfill_v1())
                    .map_err(|e| format!("{}: claiming ids: {e}", path.display()))?;
            }
            tx.commit().map_err(|e| e.to_string())?;
            Ok::<_, String>(conn)
        })
        .await
        .map_err(|e| format!("opening the database: {e}"))??;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), blobs: Arc::new(blobs.to_path_buf()) })
    }

    /// Runs `f` with the connection on a blocking thread (SQLite calls block; async workers must not).
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> ApiResult<T> + Send + 'static,
    {
        let (conn, blobs) = (self.conn.clone(), self.blobs.clone());
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere while holding the lock leaves the connection usable: SQLite rolls back
            // an unfinished transaction when its guard drops.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let out = f(&mut guard)?;
            if guard.is_autocommit() {
                empty_trash(&guard, &blobs);
            }
            Ok(out)
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

/// Removes the files named in `trash` (committed: no row points at them any more). A failure leaves
/// the name for the next call or start.
pub fn empty_trash(conn: &Connection, blobs: &Path) {
    let names: Vec<String> = match conn.prepare_cached("SELECT file_name FROM trash") {
        Ok(mut stmt) => match stmt.query_map([], |r| r.get(0)) {
            Ok(rows) => rows.filter_map(Result::ok).collect(),
            Err(_) => return,
        },
        Err(_) => return,
    };
    for name in names {
        match std::fs::remove_file(blobs.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                eprintln!("norman serve: removing an old blob file: {e}");
                continue;
            }
        }
        let _ = conn.execute("DELETE FROM trash WHERE file_name = ?1", [&name]);
    }
}

/// Syncs a directory, so that a file renamed or linked into it survives a power loss.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
