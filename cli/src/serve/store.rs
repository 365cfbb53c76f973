//! The blob index and what happens when a file transfer (socket upload or link download) starts,
//! finishes or fails: flags, the model's and invocation's derived flags, notifications, echo.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::db::{empty_trash, new_id, now, parse, sync_dir};
use super::flags::{self, ERROR, FINISHED, IN_PROGRESS};
use super::http::{item_by_id, str_of, ApiError, ApiResult};
use super::models::load_model;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Asset,
    Input,
    Output,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Asset => "asset",
            Kind::Input => "input",
            Kind::Output => "output",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "asset" => Some(Kind::Asset),
            "input" => Some(Kind::Input),
            "output" => Some(Kind::Output),
            _ => None,
        }
    }

    /// The `entity_type` of a TrackedDownload.
    pub fn entity_type(self) -> &'static str {
        match self {
            Kind::Asset => "Asset",
            Kind::Input => "Input",
            Kind::Output => "Output",
        }
    }
}

/// The entity a file belongs to.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub account_id: String,
    pub model_id: String,
    /// Set for inputs and outputs.
    pub invocation_id: Option<String>,
    pub entity_id: String,
}

fn entity_flag_names(conn: &Connection, target: &Target) -> ApiResult<Vec<&'static str>> {
    Ok(match target.kind {
        Kind::Asset => {
            let model = load_model(conn, &target.account_id, &target.model_id)?;
            let asset = item_by_id(&model, "assets", &target.entity_id);
            flags::asset_flag_names(asset.map_or("", |a| str_of(a, "asset_name"))).to_vec()
        }
        Kind::Input => flags::INPUT_FLAGS.to_vec(),
        Kind::Output => flags::OUTPUT_FLAGS.to_vec(),
    })
}

fn set_target_flags(conn: &Connection, target: &Target, value: i64) -> ApiResult<()> {
    let names = entity_flag_names(conn, target)?;
    flags::set(conn, &target.account_id, &target.entity_id, target.kind.as_str(), &names, value)?;
    refresh_owner(conn, target)
}

/// Re-derives the flags of the model (for an asset) or invocation (for an input or output).
fn refresh_owner(conn: &Connection, target: &Target) -> ApiResult<()> {
    match (&target.kind, &target.invocation_id) {
        (Kind::Asset, _) => {
            refresh_model_flags(conn, &load_model(conn, &target.account_id, &target.model_id)?)
        }
        (_, Some(invocation_id)) => match load_invocation(conn, &target.account_id, invocation_id)? {
            Some(invocation) => refresh_invocation_flag(conn, &invocation),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

pub fn start_transfer(conn: &Connection, target: &Target) -> ApiResult<()> {
    set_target_flags(conn, target, IN_PROGRESS)
}

/// Records a blob whose file is complete under `blobs` (replacing an earlier one, whose file goes once
/// this transaction commits), sets flags Finished, and runs the echo model for inputs.
pub fn finish_transfer(
    conn: &Connection,
    blobs: &Path,
    target: &Target,
    file_name: &str,
    size: u64,
    checksum: &str,
) -> ApiResult<()> {
    if !account_exists(conn, &target.account_id)? {
        return Err(ApiError::not_found("the account was deleted; nothing was stored"));
    }
    // The file's directory entry must be durable before a committed row points at it.
    sync_dir(blobs).map_err(|e| ApiError::internal(format!("syncing the blob directory: {e}")))?;
    record_blob(conn, blobs, target, file_name, size, checksum)?;
    set_target_flags(conn, target, FINISHED)?;
    notify(
        conn,
        target,
        "Success",
        "File received",
        &format!("{} {} is stored", target.kind.as_str(), target.entity_id),
    )?;
    if target.kind == Kind::Input {
        echo(conn, blobs, target)?;
    }
    Ok(())
}

/// A transfer that ends after its account was deleted must not bring any of its data back.
fn account_exists(conn: &Connection, account_id: &str) -> ApiResult<bool> {
    Ok(conn.query_row("SELECT 1 FROM accounts WHERE id = ?1", [account_id], |_| Ok(())).optional()?.is_some())
}

pub fn fail_transfer(conn: &Connection, target: &Target, detail: &str) -> ApiResult<()> {
    if !account_exists(conn, &target.account_id)? {
        return Ok(());
    }
    set_target_flags(conn, target, ERROR)?;
    notify(conn, target, "Error", "File transfer failed", detail)
}

fn record_blob(
    conn: &Connection,
    blobs: &Path,
    target: &Target,
    file_name: &str,
    size: u64,
    checksum: &str,
) -> ApiResult<()> {
    delete_blob(conn, blobs, target.kind.as_str(), &target.entity_id)?;
    // The account scopes every write of a row keyed by a client's id (triggers refuse another
    // account's ids anyway; see db.rs).
    conn.execute(
        "INSERT INTO blobs (kind, entity_id, account_id, model_id, invocation_id, file_name, size, checksum, creation_time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            target.kind.as_str(),
            target.entity_id,
            target.account_id,
            target.model_id,
            target.invocation_id,
            file_name,
            size as i64,
            checksum,
            now()
        ],
    )?;
    Ok(())
}

/// A stored blob: its file and size.
pub struct Blob {
    pub path: PathBuf,
    pub size: u64,
}

/// Looks up the blob of an entity of the caller's, checking the model and invocation it was filed under.
pub fn find_blob(
    conn: &Connection,
    blobs: &Path,
    kind: Kind,
    account_id: &str,
    model_id: &str,
    invocation_id: Option<&str>,
    entity_id: &str,
) -> ApiResult<Option<Blob>> {
    let row: Option<(String, String, Option<String>, i64)> = conn
        .query_row(
            "SELECT file_name, model_id, invocation_id, size FROM blobs WHERE kind = ?1 AND entity_id = ?2 AND account_id = ?3",
            params![kind.as_str(), entity_id, account_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    Ok(row
        .filter(|(_, m, i, _)| m == model_id && i.as_deref() == invocation_id)
        .map(|(file_name, _, _, size)| Blob { path: blobs.join(file_name), size: size.max(0) as u64 }))
}

/// Removes an entity's blob from the index; its file goes once the transaction commits (`trash`).
pub fn delete_blob(conn: &Connection, _blobs: &Path, kind: &str, entity_id: &str) -> ApiResult<()> {
    conn.execute(
        "INSERT OR IGNORE INTO trash (file_name) SELECT file_name FROM blobs WHERE kind = ?1 AND entity_id = ?2",
        [kind, entity_id],
    )?;
    conn.execute("DELETE FROM blobs WHERE kind = ?1 AND entity_id = ?2", [kind, entity_id])?;
    Ok(())
}

/// Everything an account owns except its credentials: objects, flags, transfers and blobs (their
/// files go once the transaction commits). The ids it used stay claimed (db.rs), so none of them,
/// its own included, can be taken by anyone again.
pub fn delete_account_data(conn: &Connection, account_id: &str) -> ApiResult<()> {
    conn.execute(
        "INSERT OR IGNORE INTO trash (file_name) SELECT file_name FROM blobs WHERE account_id = ?1",
        [account_id],
    )?;
    for table in [
        "blobs",
        "status_flags",
        "downloads",
        "pairings",
        "notifications",
        "invocations",
        "models",
        "model_bases",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE account_id = ?1"), [account_id])?;
    }
    Ok(())
}

/// A model's flags from its assets': for each asset flag prefix (Logo, File), the combination of the
/// flags of the assets with that prefix.
pub fn refresh_model_flags(conn: &Connection, model: &Value) -> ApiResult<()> {
    let mut groups: Vec<([&'static str; 2], Vec<i64>)> = Vec::new();
    for asset in model["assets"].as_array().into_iter().flatten() {
        let names = flags::asset_flag_names(str_of(asset, "asset_name"));
        let values = flags::values(conn, str_of(asset, "id"))?;
        match groups.iter_mut().find(|(n, _)| *n == names) {
            Some((_, all)) => all.extend(values),
            None => groups.push((names, values)),
        }
    }
    for (names, values) in groups {
        flags::set(
            conn,
            str_of(model, "account_id"),
            str_of(model, "id"),
            "model",
            &names,
            flags::combine(&values),
        )?;
    }
    Ok(())
}

pub fn load_invocation(conn: &Connection, account_id: &str, invocation_id: &str) -> ApiResult<Option<Value>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT json FROM invocations WHERE id = ?1 AND account_id = ?2",
            [invocation_id, account_id],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| parse(&t)).transpose()
}

/// An invocation of the caller's that must exist and be of `model_id`.
pub fn load_invocation_of(
    conn: &Connection,
    account_id: &str,
    invocation_id: &str,
    model_id: &str,
) -> ApiResult<Value> {
    let invocation = load_invocation(conn, account_id, invocation_id)?
        .ok_or_else(|| ApiError::not_found(format!("invocation {invocation_id} not found")))?;
    if str_of(&invocation, "model_id") != model_id {
        return Err(ApiError::not_found(format!("invocation {invocation_id} is not of model {model_id}")));
    }
    Ok(invocation)
}

pub fn save_invocation(conn: &Connection, invocation: &Value) -> ApiResult<()> {
    conn.execute(
        "UPDATE invocations SET json = ?1 WHERE id = ?2",
        params![invocation.to_string(), str_of(invocation, "id")],
    )?;
    Ok(())
}

/// Model_Function_Run of an invocation: Error if an input or output failed, Finished once every
/// input and output is in, Enqueued once every input is in, Not_Started before.
pub fn refresh_invocation_flag(conn: &Connection, invocation: &Value) -> ApiResult<()> {
    let states = |list: &str| -> ApiResult<Vec<i64>> {
        let mut out = Vec::new();
        for sig in invocation[list].as_array().into_iter().flatten() {
            out.push(flags::combine(&flags::values(conn, str_of(sig, "id"))?));
        }
        Ok(out)
    };
    let inputs = states("inputs")?;
    let outputs = states("outputs")?;
    let done = |v: &Vec<i64>| v.iter().all(|s| *s == FINISHED);
    let value = if inputs.contains(&ERROR) || outputs.contains(&ERROR) {
        ERROR
    } else if done(&inputs) && !outputs.is_empty() && done(&outputs) {
        FINISHED
    } else if done(&inputs) && !inputs.is_empty() {
        flags::ENQUEUED
    } else {
        flags::NOT_STARTED
    };
    flags::set(
        conn,
        str_of(invocation, "account_id"),
        str_of(invocation, "id"),
        "invocation",
        &flags::INVOCATION_FLAGS,
        value,
    )
}

pub fn notify(
    conn: &Connection,
    target: &Target,
    severity: &str,
    title: &str,
    message: &str,
) -> ApiResult<()> {
    let model_name: Option<String> = conn
        .query_row("SELECT name FROM models WHERE id = ?1", [&target.model_id], |r| r.get(0))
        .optional()?;
    let id = new_id();
    let time = now();
    let notification = json!({
        "id": id,
        "account_id": target.account_id,
        "entity_id": target.entity_id,
        "creation_time": time,
        "model_name": model_name,
        "title": title,
        "message": message,
        "read_status": 0,
        "severity": severity,
    });
    conn.execute(
        "INSERT INTO notifications (id, account_id, entity_id, creation_time, json) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, target.account_id, target.entity_id, time, notification.to_string()],
    )?;
    Ok(())
}

/// The echo model: a finished input becomes the output with the same index.
fn echo(conn: &Connection, blobs: &Path, input: &Target) -> ApiResult<()> {
    let Some(invocation_id) = &input.invocation_id else { return Ok(()) };
    let Some(mut invocation) = load_invocation(conn, &input.account_id, invocation_id)? else {
        return Ok(());
    };
    let model = load_model(conn, &input.account_id, str_of(&invocation, "model_id"))?;
    if str_of(&model, "name") != "echo" {
        return Ok(());
    }
    let inputs = invocation["inputs"].as_array().cloned().unwrap_or_default();
    let Some(index) = inputs.iter().position(|s| str_of(s, "id") == input.entity_id) else { return Ok(()) };
    let mut outputs = invocation["outputs"].as_array().cloned().unwrap_or_default();
    if outputs.len() <= index {
        // An invocation created without outputs gets ones mirroring its inputs.
        for sig in &inputs[outputs.len()..=index] {
            let output = mirror_signature(sig, &invocation);
            flags::set(
                conn,
                &input.account_id,
                str_of(&output, "id"),
                "output",
                &flags::OUTPUT_FLAGS,
                flags::NOT_STARTED,
            )?;
            outputs.push(output);
        }
        invocation["outputs"] = Value::Array(outputs.clone());
        save_invocation(conn, &invocation)?;
    }
    let output = Target {
        kind: Kind::Output,
        account_id: input.account_id.clone(),
        model_id: input.model_id.clone(),
        invocation_id: Some(invocation_id.clone()),
        entity_id: str_of(&outputs[index], "id").to_owned(),
    };
    let (source, size, checksum): (String, i64, String) = conn.query_row(
        "SELECT file_name, size, checksum FROM blobs WHERE kind = 'input' AND entity_id = ?1 AND account_id = ?2",
        [&input.entity_id, &input.account_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let file_name = new_id();
    let (from, to) = (blobs.join(&source), blobs.join(&file_name));
    // Blobs are never modified in place, so a hard link is a safe copy.
    if std::fs::hard_link(&from, &to).is_err() {
        let copied = std::fs::copy(&from, &to).and_then(|_| std::fs::File::open(&to)?.sync_all());
        copied.map_err(|e| ApiError::internal(format!("echo: copying the input: {e}")))?;
    }
    finish_transfer(conn, blobs, &output, &file_name, size.max(0) as u64, &checksum)
}

/// An output signature for an invocation, mirroring an input's.
pub fn mirror_signature(input: &Value, invocation: &Value) -> Value {
    json!({
        "id": new_id(),
        "account_id": invocation["account_id"],
        "model_id": invocation["model_id"],
        "signature_id": input.get("signature_id").cloned().unwrap_or(json!("0")),
        "invocation_id": invocation["id"],
        "display_title": input.get("display_title").cloned().unwrap_or(json!("")),
    })
}

/// At startup, before any transfer runs: removes what a killed process left in the blobs directory:
/// files named in `trash`, temporary `.part` files, and blob files no row points at (written, but
/// their transaction never committed).
pub fn sweep_blobs(conn: &mut Connection, blobs: &Path) -> ApiResult<()> {
    empty_trash(conn, blobs);
    let mut known = std::collections::HashSet::new();
    {
        let mut stmt = conn.prepare("SELECT file_name FROM blobs")?;
        for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
            known.insert(name?);
        }
    }
    let entries =
        std::fs::read_dir(blobs).map_err(|e| ApiError::internal(format!("{}: {e}", blobs.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let part = name.starts_with('.') && name.ends_with(".part");
        let orphan = !name.starts_with('.') && !known.contains(name);
        if (part || orphan) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// At startup: uploads and downloads of a previous process cannot finish any more.
pub fn fail_interrupted_transfers(conn: &mut Connection) -> ApiResult<()> {
    let tx = conn.transaction()?;
    let mut targets = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT kind, account_id, model_id, invocation_id, entity_id FROM pairings WHERE state = 'open'",
        )?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        for row in rows {
            let (kind, account_id, model_id, invocation_id, entity_id) = row?;
            if let Some(kind) = Kind::parse(&kind) {
                targets.push(Target { kind, account_id, model_id, invocation_id, entity_id });
            }
        }
        let mut stmt = tx.prepare("SELECT json FROM downloads WHERE state = 'running'")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            if let Some(target) = download_target(&parse(&row?)?) {
                targets.push(target);
            }
        }
    }
    tx.execute(
        "UPDATE pairings SET state = 'expired', detail = 'the server restarted' WHERE state = 'open'",
        [],
    )?;
    tx.execute(
        "UPDATE downloads SET state = 'error', detail = 'the server restarted' WHERE state = 'running'",
        [],
    )?;
    for target in targets {
        // The entity may be gone; a stale transfer must not stop the server from starting.
        let _ = fail_transfer(&tx, &target, "interrupted: the server restarted");
    }
    tx.commit()?;
    Ok(())
}

/// The target a TrackedDownload's JSON describes.
pub fn download_target(tracked: &Value) -> Option<Target> {
    let request = &tracked["download_request"];
    let (kind, invocation_id, entity_id) = match tracked["entity_type"].as_str()? {
        "Asset" => (Kind::Asset, None, str_of(&tracked["asset"], "id")),
        "Input" => (
            Kind::Input,
            Some(str_of(&tracked["invocation"], "id")),
            str_of(&tracked["invocation_input"], "id"),
        ),
        "Output" => (
            Kind::Output,
            Some(str_of(&tracked["invocation"], "id")),
            str_of(&tracked["invocation_output"], "id"),
        ),
        _ => return None,
    };
    Some(Target {
        kind,
        account_id: str_of(request, "account_id").to_owned(),
        model_id: str_of(request, "model_id").to_owned(),
        invocation_id: invocation_id.map(str::to_owned),
        entity_id: entity_id.to_owned(),
    })
}
