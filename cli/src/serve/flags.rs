//! Status flags: storage helpers, `persist/flags/get` (current numbering) and the per-entity routes of
//! the earlier API (§5, legacy numbering). Values are stored in the current numbering.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use norman::objects::{LegacyStatusFlag, StatusFlag, StatusFlagName, StatusFlagValue};
use rusqlite::{params, Connection};
use serde_json::Value;

use super::auth::Auth;
use super::db::{new_id, now};
use super::http::{ordered_object, ApiError, ApiResult, JsonBody, RawJson};
use super::query::{Columns, Compiled};
use super::AppState;

// Stored as the current numbering of the library's StatusFlagValue.
pub const NOT_STARTED: i64 = StatusFlagValue::NotStarted as i64;
pub const ENQUEUED: i64 = StatusFlagValue::Enqueued as i64;
pub const IN_PROGRESS: i64 = StatusFlagValue::InProgress as i64;
pub const FINISHED: i64 = StatusFlagValue::Finished as i64;
pub const ERROR: i64 = StatusFlagValue::Error as i64;

/// The legacy numbering (Error=0, Not_Started=1, ..., Finished=4) is the current one shifted by one.
const LEGACY_VALUE_SQL: &str = "((flag_value + 1) % 5)";

/// Flag names of an asset (and of its model) by asset name.
pub fn asset_flag_names(asset_name: &str) -> [&'static str; 2] {
    if asset_name.eq_ignore_ascii_case("logo") {
        ["Logo_EFS_Staging", "Logo_S3_Storage"]
    } else {
        ["File_EFS_Staging", "File_S3_Storage"]
    }
}

pub const INPUT_FLAGS: [&str; 2] = ["Input_EFS_Staging", "Input_S3_Storage"];
pub const OUTPUT_FLAGS: [&str; 2] = ["Output_EFS_Staging", "Output_S3_Storage"];
pub const INVOCATION_FLAGS: [&str; 1] = ["Model_Function_Run"];

/// Sets (creating if needed) each named flag of an entity to `value`.
pub fn set(
    conn: &Connection,
    account_id: &str,
    entity_id: &str,
    entity_type: &str,
    names: &[&str],
    value: i64,
) -> ApiResult<()> {
    let time = now();
    for name in names {
        conn.execute(
            "INSERT INTO status_flags (id, account_id, entity_id, entity_type, flag_name, flag_value, update_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (entity_id, flag_name) DO UPDATE SET flag_value = excluded.flag_value, \
             update_time = excluded.update_time",
            params![new_id(), account_id, entity_id, entity_type, name, value, time],
        )?;
    }
    Ok(())
}

/// Values of all flags of an entity.
pub fn values(conn: &Connection, entity_id: &str) -> ApiResult<Vec<i64>> {
    let mut stmt = conn.prepare("SELECT flag_value FROM status_flags WHERE entity_id = ?1")?;
    let values = stmt.query_map([entity_id], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
    Ok(values)
}

/// The state of several flags taken together: Error if any failed, Finished if all finished, In
/// Progress if any moved, Not Started otherwise (also for none).
pub fn combine(values: &[i64]) -> i64 {
    if values.contains(&ERROR) {
        ERROR
    } else if !values.is_empty() && values.iter().all(|v| *v == FINISHED) {
        FINISHED
    } else if values.iter().any(|v| *v == IN_PROGRESS || *v == FINISHED || *v == ENQUEUED) {
        IN_PROGRESS
    } else {
        NOT_STARTED
    }
}

const COLUMNS: Columns = &[
    ("ID", "id"),
    ("Account_ID", "account_id"),
    ("Entity_ID", "entity_id"),
    ("Entity_Type", "entity_type"),
    ("Flag_Name", "flag_name"),
    ("Flag_Value", "flag_value"),
    ("Update_Time", "update_time"),
];

const LEGACY_COLUMNS: Columns = &[
    ("ID", "id"),
    ("Account_ID", "account_id"),
    ("Entity_ID", "entity_id"),
    ("Flag_Name", "flag_name"),
    ("Flag_Value", LEGACY_VALUE_SQL),
    ("Update_Time", "update_time"),
];

/// `{entity_id: [StatusFlag]}` of the caller's flags matching the constraints, optionally of one
/// entity type, in the legacy numbering or not.
async fn query(
    state: AppState,
    auth: Auth,
    body: Value,
    entity_type: Option<&'static str>,
) -> ApiResult<RawJson> {
    let legacy = entity_type.is_some();
    let query = Compiled::from_body(&body, if legacy { LEGACY_COLUMNS } else { COLUMNS })?;
    state
        .db
        .call(move |conn| {
            let select =
                "SELECT id, account_id, entity_id, update_time, flag_name, flag_value FROM status_flags";
            let mut scope_params = vec![auth.account_id.into()];
            let scope = match entity_type {
                Some(kind) => {
                    scope_params.push(kind.to_owned().into());
                    "account_id = ? AND entity_type = ?"
                }
                None => "account_id = ?",
            };
            let rows = query.query_map(conn, select, scope, scope_params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, String>(4)?,
                    r.get(5)?,
                ))
            })?;
            let rows = rows.into_iter().map(|(id, account_id, entity_id, update_time, name, value)| {
                let flag_value = StatusFlagValue::from_number(value).ok_or_else(|| {
                    ApiError::internal(format!("stored flag value {value} is out of range"))
                })?;
                let flag = StatusFlag {
                    id,
                    account_id,
                    entity_id,
                    update_time,
                    flag_name: StatusFlagName::from(name),
                    flag_value,
                };
                let out = if legacy {
                    serde_json::to_value(LegacyStatusFlag::from(&flag))
                } else {
                    serde_json::to_value(&flag)
                };
                let out = out.map_err(|e| ApiError::internal(format!("encoding a flag: {e}")))?;
                Ok::<_, ApiError>((flag.entity_id, out))
            });
            // Group by entity, keeping the order of first appearance.
            let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
            let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            for row in rows {
                let (entity, flag) = row?;
                match index.get(&entity) {
                    Some(&i) => groups[i].1.push(flag),
                    None => {
                        index.insert(entity.clone(), groups.len());
                        groups.push((entity, vec![flag]));
                    }
                }
            }
            Ok(ordered_object(groups.into_iter().map(|(e, flags)| (e, Value::Array(flags)))))
        })
        .await
}

pub async fn get_flags(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    query(state, auth, body, None).await
}

/// The per-entity route of the earlier API for flags of `entity_type`, in the legacy numbering.
pub fn legacy(entity_type: &'static str) -> MethodRouter<AppState> {
    post(move |State(state): State<AppState>, auth: Auth, JsonBody(body): JsonBody| {
        query(state, auth, body, Some(entity_type))
    })
}
