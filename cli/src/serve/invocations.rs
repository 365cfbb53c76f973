//! Invocations (and their history) and notifications.

use axum::extract::State;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::db::{new_id, now};
use super::flags;
use super::http::{
    each_object, given_id, json, object, req_str, str_of, ApiError, ApiResult, JsonBody, RawJson,
};
use super::models::load_model;
use super::query::{Columns, Compiled};
use super::store::mirror_signature;
use super::AppState;

const INVOCATION_COLUMNS: Columns = &[
    ("ID", "id"),
    ("Invocation_ID", "id"),
    ("Account_ID", "account_id"),
    ("Model_ID", "model_id"),
    ("Creation_Time", "creation_time"),
];

const NOTIFICATION_COLUMNS: Columns = &[
    ("ID", "id"),
    ("Account_ID", "account_id"),
    ("Entity_ID", "entity_id"),
    ("Creation_Time", "creation_time"),
    ("Model_Name", "json_extract(json, '$.model_name')"),
    ("Title", "json_extract(json, '$.title')"),
    ("Severity", "json_extract(json, '$.severity')"),
    ("Read_Status", "json_extract(json, '$.read_status')"),
];

/// The most invocations one by-name request may create per model.
const MAX_BY_NAME: u64 = 1000;

/// An invocation signature for `invocation`, from what was sent or from a model signature.
fn signature(
    sent: Option<&Map<String, Value>>,
    model_sig: Option<&Value>,
    invocation: &Map<String, Value>,
) -> ApiResult<Value> {
    let mut sig = sent.cloned().unwrap_or_default();
    let id = given_id(&sig, "id")?.unwrap_or_else(new_id);
    sig.insert("id".into(), json!(id));
    for field in ["account_id", "model_id"] {
        sig.insert(field.into(), invocation.get(field).cloned().unwrap_or(Value::Null));
    }
    sig.insert("invocation_id".into(), invocation.get("id").cloned().unwrap_or(Value::Null));
    if !matches!(sig.get("signature_id"), Some(Value::String(_))) {
        sig.insert("signature_id".into(), model_sig.map_or(json!("0"), |m| json!(str_of(m, "id"))));
    }
    if !matches!(sig.get("display_title"), Some(Value::String(_))) {
        sig.insert("display_title".into(), json!(model_sig.map_or("", |m| str_of(m, "display_title"))));
    }
    Ok(Value::Object(sig))
}

/// Stores one invocation. Inputs and outputs not sent come from the model's signatures; an `echo`
/// model without output signatures gets outputs mirroring the inputs.
fn create(conn: &Connection, auth: &Auth, sent: &Map<String, Value>) -> ApiResult<Value> {
    auth.check_field(sent)?;
    let model = load_model(conn, &auth.account_id, req_str(sent, "model_id")?)?;
    let mut invocation = sent.clone();
    let id = given_id(sent, "id")?.unwrap_or_else(new_id);
    invocation.insert("id".into(), json!(id));
    invocation.insert("account_id".into(), json!(auth.account_id));
    if !matches!(invocation.get("creation_time"), Some(Value::String(_))) {
        invocation.insert("creation_time".into(), json!(now()));
    }
    for list in ["inputs", "outputs"] {
        let given = match sent.get(list) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(ApiError::unprocessable(format!("field `{list}` must be a list"))),
        };
        let mut sigs = Vec::new();
        if given.is_empty() {
            for model_sig in model[list].as_array().into_iter().flatten() {
                sigs.push(signature(None, Some(model_sig), &invocation)?);
            }
        } else {
            for (i, item) in given.iter().enumerate() {
                let item = item
                    .as_object()
                    .ok_or_else(|| ApiError::unprocessable(format!("{list}[{i}] must be an object")))?;
                sigs.push(signature(Some(item), None, &invocation)?);
            }
        }
        invocation.insert(list.into(), Value::Array(sigs));
    }
    let mut invocation = Value::Object(invocation);
    let no_outputs = invocation["outputs"].as_array().is_none_or(Vec::is_empty);
    if str_of(&model, "name") == "echo" && no_outputs {
        let inputs = invocation["inputs"].as_array().cloned().unwrap_or_default();
        invocation["outputs"] =
            Value::Array(inputs.iter().map(|i| mirror_signature(i, &invocation)).collect());
    }
    conn.execute(
        "INSERT INTO invocations (id, account_id, model_id, creation_time, json) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id,
            auth.account_id,
            str_of(&invocation, "model_id"),
            str_of(&invocation, "creation_time"),
            invocation.to_string()
        ],
    )?;
    flags::set(conn, &auth.account_id, &id, "invocation", &flags::INVOCATION_FLAGS, flags::NOT_STARTED)?;
    for (list, names, kind) in
        [("inputs", flags::INPUT_FLAGS, "input"), ("outputs", flags::OUTPUT_FLAGS, "output")]
    {
        for sig in invocation[list].as_array().into_iter().flatten() {
            flags::set(conn, &auth.account_id, str_of(sig, "id"), kind, &names, flags::NOT_STARTED)?;
        }
    }
    Ok(invocation)
}

pub async fn create_invocations(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let out = each_object(&body, "an Invocation", |sent| create(conn, &auth, sent))?;
            Ok(json(Value::Array(out)))
        })
        .await
}

/// POST persist/invocations/by-name {model_name: count}: invocations of the active (else newest)
/// version of each named model of the caller's.
pub async fn create_by_name(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let mut out = Vec::new();
            for (name, count) in object(&body, "the request {model_name: count}")? {
                let count = count.as_u64().filter(|n| (1..=MAX_BY_NAME).contains(n)).ok_or_else(|| {
                    ApiError::unprocessable(format!("count for `{name}` must be 1-{MAX_BY_NAME}"))
                })?;
                let model_id: Option<String> = conn
                    .query_row(
                        "SELECT id FROM models WHERE account_id = ?1 AND name = ?2 \
                         ORDER BY json_extract(json, '$.active') DESC, rowid DESC LIMIT 1",
                        [&auth.account_id, name],
                        |r| r.get(0),
                    )
                    .optional()?;
                let model_id =
                    model_id.ok_or_else(|| ApiError::not_found(format!("no model named `{name}`")))?;
                let mut sent = Map::new();
                sent.insert("model_id".into(), json!(model_id));
                for _ in 0..count {
                    out.push(create(conn, &auth, &sent)?);
                }
            }
            Ok(json(Value::Array(out)))
        })
        .await
}

/// POST persist/invocations/get and persist/invocation/history/get: `{id: Invocation}`.
pub async fn get_invocations(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let query = Compiled::from_body(&body, INVOCATION_COLUMNS)?;
    state
        .db
        .call(move |conn| {
            query.select_by_id(conn, "invocations", "account_id = ?", vec![auth.account_id.into()])
        })
        .await
}

/// POST persist/notifications/get: `[Notification]`.
pub async fn get_notifications(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let query = Compiled::from_body(&body, NOTIFICATION_COLUMNS)?;
    state
        .db
        .call(move |conn| {
            let items =
                query.select_json(conn, "notifications", "account_id = ?", vec![auth.account_id.into()])?;
            Ok(json(Value::Array(items)))
        })
        .await
}
