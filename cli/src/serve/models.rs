//! Models, model bases and versions (§2 and the versioning of §5). A model is one version under a
//! model base; a base has at most one active version.

use axum::extract::State;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::db::{new_id, now, parse};
use super::flags;
use super::http::{
    each_object, given_id, json, ordered_object, req_str, ApiError, ApiResult, JsonBody, RawJson,
};
use super::query::{models_request, Columns, Compiled};
use super::routes::Generation;
use super::{store, AppState};

const MODEL_COLUMNS: Columns = &[
    ("ID", "id"),
    ("Model_ID", "id"),
    ("Account_ID", "account_id"),
    ("Model_Base_ID", "model_base_id"),
    ("Name", "name"),
    ("Creation_Time", "creation_time"),
    ("Version_Label", "json_extract(json, '$.version_label')"),
    ("Active", "json_extract(json, '$.active')"),
    ("Build_Status", "json_extract(json, '$.build_status')"),
    ("Model_Type", "json_extract(json, '$.model_type')"),
    ("Model_Class", "json_extract(json, '$.model_class')"),
    ("Hosting_Location", "json_extract(json, '$.hosting_location')"),
    ("Output_Format", "json_extract(json, '$.output_format')"),
    ("Short_Description", "json_extract(json, '$.short_description')"),
];

const BASE_COLUMNS: Columns = &[
    ("ID", "id"),
    ("Model_Base_ID", "id"),
    ("Account_ID", "account_id"),
    ("Name", "name"),
    ("Creation_Time", "creation_time"),
];

/// Models whose flags are all Finished (a model without flags has nothing pending).
const FINISHED_SQL: &str =
    "NOT EXISTS (SELECT 1 FROM status_flags f WHERE f.entity_id = models.id AND f.flag_value != 3)";

pub fn load_model(conn: &Connection, account_id: &str, model_id: &str) -> ApiResult<Value> {
    let text: Option<String> = conn
        .query_row("SELECT json FROM models WHERE id = ?1 AND account_id = ?2", [model_id, account_id], |r| {
            r.get(0)
        })
        .optional()?;
    match text {
        Some(text) => parse(&text),
        None => Err(ApiError::not_found(format!("model {model_id} not found"))),
    }
}

pub fn save_model(conn: &Connection, model: &Value) -> ApiResult<()> {
    conn.execute(
        "UPDATE models SET json = ?1, name = ?2, model_base_id = ?3 WHERE id = ?4",
        params![
            model.to_string(),
            model["name"].as_str(),
            model["model_base_id"].as_str(),
            model["id"].as_str()
        ],
    )?;
    Ok(())
}

fn fill_id(obj: &mut Map<String, Value>) -> ApiResult<String> {
    let id = given_id(obj, "id")?.unwrap_or_else(new_id);
    obj.insert("id".into(), json!(id));
    Ok(id)
}

/// Fills every server-side default of a model and its parts. `model_base_id` is set by the caller.
fn normalize(auth: &Auth, sent: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    auth.check_field(sent)?;
    req_str(sent, "name")?;
    let mut model = sent.clone();
    let id = fill_id(&mut model)?;
    model.insert("account_id".into(), json!(auth.account_id));
    if !matches!(model.get("creation_time"), Some(Value::String(_))) {
        model.insert("creation_time".into(), json!(now()));
    }
    if !matches!(model.get("active"), Some(Value::Bool(_))) {
        model.insert("active".into(), json!(true));
    }
    for list in ["assets", "inputs", "outputs", "tags", "user_added_tags"] {
        match model.get_mut(list) {
            None | Some(Value::Null) => {
                model.insert(list.into(), json!([]));
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let item = item
                        .as_object_mut()
                        .ok_or_else(|| ApiError::unprocessable(format!("{list}[{i}] must be an object")))?;
                    fill_part(list, i, item, &id, &auth.account_id)?;
                }
            }
            Some(_) => return Err(ApiError::unprocessable(format!("field `{list}` must be a list"))),
        }
    }
    Ok(model)
}

fn fill_part(
    list: &str,
    i: usize,
    item: &mut Map<String, Value>,
    model_id: &str,
    account_id: &str,
) -> ApiResult<()> {
    match list {
        "assets" => {
            req_str(item, "asset_name")
                .map_err(|e| ApiError::unprocessable(format!("assets[{i}]: {}", e.detail)))?;
            fill_id(item)?;
            item.insert("account_id".into(), json!(account_id));
            item.insert("model_id".into(), json!(model_id));
        }
        "inputs" | "outputs" => {
            let signature_id = fill_id(item)?;
            item.insert("model_id".into(), json!(model_id));
            for (sub, parent_field) in [("parameters", "signature_id"), ("transforms", "signature_id")] {
                if let Some(Value::Array(parts)) = item.get_mut(sub) {
                    for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                        fill_id(part)?;
                        part.insert(parent_field.into(), json!(signature_id));
                        if sub == "parameters" {
                            part.insert("model_id".into(), json!(model_id));
                        }
                    }
                }
            }
        }
        "user_added_tags" => {
            fill_id(item)?;
            item.insert("account_id".into(), json!(account_id));
            item.insert("model_id".into(), json!(model_id));
        }
        _ => {
            item.insert("model_id".into(), json!(model_id));
        }
    }
    Ok(())
}

/// Stores a normalized model under `base_id`, creates its flags, and makes it the base's active
/// version if it is active.
fn insert_model(conn: &Connection, mut model: Map<String, Value>, base_id: &str) -> ApiResult<Value> {
    if !matches!(model.get("version_label"), Some(Value::String(_))) {
        let versions: i64 =
            conn.query_row("SELECT COUNT(*) FROM models WHERE model_base_id = ?1", [base_id], |r| r.get(0))?;
        model.insert("version_label".into(), json!(format!("v{}", versions + 1)));
    }
    model.insert("model_base_id".into(), json!(base_id));
    let model = Value::Object(model);
    let id = model["id"].as_str().unwrap_or_default();
    conn.execute(
        "INSERT INTO models (id, account_id, model_base_id, name, creation_time, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, model["account_id"].as_str(), base_id, model["name"].as_str(), model["creation_time"].as_str(), model.to_string()],
    )?;
    if model["active"] == json!(true) {
        deactivate_siblings(conn, base_id, id)?;
    }
    create_asset_flags(conn, &model)?;
    Ok(model)
}

/// Saves a stored model (version `id`); an active one becomes the only active version of its base.
fn save_version(conn: &Connection, model: &Value, id: &str) -> ApiResult<()> {
    save_model(conn, model)?;
    if model["active"] == json!(true) {
        deactivate_siblings(conn, model["model_base_id"].as_str().unwrap_or_default(), id)?;
    }
    Ok(())
}

/// The `id` a request item must carry.
fn required_id(sent: &Map<String, Value>) -> ApiResult<String> {
    given_id(sent, "id")?.ok_or_else(|| ApiError::unprocessable("field `id` is required"))
}

fn deactivate_siblings(conn: &Connection, base_id: &str, active_id: &str) -> ApiResult<()> {
    conn.execute(
        "UPDATE models SET json = json_set(json, '$.active', json('false')) WHERE model_base_id = ?1 AND id != ?2",
        [base_id, active_id],
    )?;
    Ok(())
}

/// Not_Started flags for every asset without flags yet, then the model's flags from its assets'.
fn create_asset_flags(conn: &Connection, model: &Value) -> ApiResult<()> {
    let account_id = model["account_id"].as_str().unwrap_or_default();
    for asset in model["assets"].as_array().into_iter().flatten() {
        let asset_id = asset["id"].as_str().unwrap_or_default();
        if flags::values(conn, asset_id)?.is_empty() {
            let names = flags::asset_flag_names(asset["asset_name"].as_str().unwrap_or_default());
            flags::set(conn, account_id, asset_id, "asset", &names, flags::NOT_STARTED)?;
        }
    }
    store::refresh_model_flags(conn, model)
}

fn insert_base(conn: &Connection, account_id: &str, id: String, name: &str) -> ApiResult<String> {
    let time = now();
    let base = json!({ "id": id, "account_id": account_id, "name": name, "creation_time": time });
    conn.execute(
        "INSERT INTO model_bases (id, account_id, name, creation_time, json) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, account_id, name, time, base.to_string()],
    )?;
    Ok(id)
}

/// The account owning model base `base_id`, if it exists.
fn base_owner(conn: &Connection, base_id: &str) -> ApiResult<Option<String>> {
    Ok(conn
        .query_row("SELECT account_id FROM model_bases WHERE id = ?1", [base_id], |r| r.get(0))
        .optional()?)
}

fn check_base(conn: &Connection, account_id: &str, base_id: &str) -> ApiResult<()> {
    match base_owner(conn, base_id)? {
        Some(owner) if owner == account_id => Ok(()),
        _ => Err(ApiError::not_found(format!("model base {base_id} not found"))),
    }
}

/// The answer of the model writes: `[Model]` (current API) or `{id: Model}` (0.1.0), in request order.
fn models_out(models: Vec<Value>, generation: Generation) -> RawJson {
    match generation {
        Generation::Current => json(Value::Array(models)),
        Generation::Legacy => {
            ordered_object(models.into_iter().map(|m| (m["id"].as_str().unwrap_or_default().to_owned(), m)))
        }
    }
}

/// Runs `f` on each Model of the request in one transaction; what it returns, in `generation`'s shape.
async fn each_model(
    state: AppState,
    auth: Auth,
    body: Value,
    generation: Generation,
    f: fn(&Connection, &Auth, &Map<String, Value>) -> ApiResult<Value>,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let models = each_object(&body, "a Model", |sent| f(conn, &auth, sent))?;
            Ok(models_out(models, generation))
        })
        .await
}

/// POST persist/models/: creates each model under its `model_base_id` (a base that does not exist
/// yet is created with that id, as 0.1.0's own tests expect), or under a new base named after it
/// when that is "0" or absent.
pub async fn create_models(
    state: AppState,
    auth: Auth,
    body: Value,
    generation: Generation,
) -> ApiResult<RawJson> {
    each_model(state, auth, body, generation, create_model).await
}

fn create_model(conn: &Connection, auth: &Auth, sent: &Map<String, Value>) -> ApiResult<Value> {
    let model = normalize(auth, sent)?;
    let name = model.get("name").and_then(Value::as_str).unwrap_or_default();
    let base_id = match given_id(sent, "model_base_id")? {
        Some(base_id) => match base_owner(conn, &base_id)? {
            Some(owner) if owner == auth.account_id => base_id,
            Some(_) => return Err(ApiError::conflict(format!("model base id {base_id} is taken"))),
            None => insert_base(conn, &auth.account_id, base_id, name)?,
        },
        None => insert_base(conn, &auth.account_id, new_id(), name)?,
    };
    insert_model(conn, model, &base_id)
}

/// POST persist/models/version: adds each model as a new version of its existing base.
pub async fn add_versions(
    state: AppState,
    auth: Auth,
    body: Value,
    generation: Generation,
) -> ApiResult<RawJson> {
    each_model(state, auth, body, generation, add_version).await
}

fn add_version(conn: &Connection, auth: &Auth, sent: &Map<String, Value>) -> ApiResult<Value> {
    let base_id = given_id(sent, "model_base_id")?
        .ok_or_else(|| ApiError::unprocessable("a new version needs the `model_base_id` of its base"))?;
    check_base(conn, &auth.account_id, &base_id)?;
    // A version without a name takes its base's.
    let mut sent = sent.clone();
    if !matches!(sent.get("name"), Some(Value::String(_))) {
        let name: String =
            conn.query_row("SELECT name FROM model_bases WHERE id = ?1", [&base_id], |r| r.get(0))?;
        sent.insert("name".into(), json!(name));
    }
    let model = normalize(auth, &sent)?;
    insert_model(conn, model, &base_id)
}

/// PATCH persist/models/: replaces stored models (matched by id) with what was sent.
pub async fn replace_models(
    state: AppState,
    auth: Auth,
    body: Value,
    generation: Generation,
) -> ApiResult<RawJson> {
    each_model(state, auth, body, generation, replace_model).await
}

fn replace_model(conn: &Connection, auth: &Auth, sent: &Map<String, Value>) -> ApiResult<Value> {
    let id = required_id(sent)?;
    let old = load_model(conn, &auth.account_id, &id)?;
    let mut model = normalize(auth, sent)?;
    model.insert("model_base_id".into(), old["model_base_id"].clone());
    if !matches!(sent.get("creation_time"), Some(Value::String(_))) {
        model.insert("creation_time".into(), old["creation_time"].clone());
    }
    let model = Value::Object(model);
    save_version(conn, &model, &id)?;
    create_asset_flags(conn, &model)?;
    Ok(model)
}

fn preview(model: &Value) -> Value {
    let field = |k: &str| model.get(k).cloned().unwrap_or(Value::Null);
    let list = |k: &str| model.get(k).cloned().filter(Value::is_array).unwrap_or_else(|| json!([]));
    json!({
        "id": field("id"),
        "account_id": field("account_id"),
        "model_base_id": field("model_base_id"),
        "version_label": field("version_label"),
        "active": field("active"),
        "build_status": field("build_status"),
        "creation_time": field("creation_time"),
        "short_description": field("short_description"),
        "assets": list("assets"),
        "tags": list("tags"),
    })
}

/// PATCH persist/models/version [ModelPreview]: makes each named version the active one of its base
/// (or inactive, for `active: false`); returns the updated previews.
pub async fn set_active(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let ids = each_object(&body, "a ModelPreview", |sent| {
                let id = required_id(sent)?;
                let active = sent.get("active").and_then(Value::as_bool).unwrap_or(true);
                let mut model = load_model(conn, &auth.account_id, &id)?;
                model["active"] = json!(active);
                save_version(conn, &model, &id)?;
                Ok(id)
            })?;
            let mut out = Vec::new();
            for id in ids {
                out.push(preview(&load_model(conn, &auth.account_id, &id)?));
            }
            Ok(json(Value::Array(out)))
        })
        .await
}

/// DELETE persist/models/ QueryConstraints: deletes the matching models with their flags, files and
/// downloads, and bases left without versions; returns how many models went.
pub async fn delete_models(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let query = Compiled::from_body(&body, MODEL_COLUMNS)?;
    let blobs = state.blobs.clone();
    state
        .db
        .tx(move |conn| {
            let models =
                query.select_json_unpaged(conn, "models", "account_id = ?", vec![auth.account_id.clone().into()])?;
            let mut count = 0;
            for model in models {
                let id = model["id"].as_str().unwrap_or_default();
                let mut entities = vec![id.to_owned()];
                for asset in model["assets"].as_array().into_iter().flatten() {
                    let asset_id = asset["id"].as_str().unwrap_or_default();
                    entities.push(asset_id.to_owned());
                    store::delete_blob(conn, &blobs, "asset", asset_id)?;
                }
                for entity in &entities {
                    conn.execute("DELETE FROM status_flags WHERE entity_id = ?1", [entity])?;
                    conn.execute("DELETE FROM downloads WHERE entity_id = ?1", [entity])?;
                }
                count += conn.execute("DELETE FROM models WHERE id = ?1", [id])?;
            }
            conn.execute(
                "DELETE FROM model_bases WHERE account_id = ?1 AND id NOT IN (SELECT model_base_id FROM models)",
                [&auth.account_id],
            )?;
            Ok(json(json!(count)))
        })
        .await
}

/// POST persist/models/get.
pub async fn get_models(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let (constraints, finished) = models_request(&body)?;
    let query = Compiled::new(constraints.as_ref(), MODEL_COLUMNS)?;
    state
        .db
        .call(move |conn| {
            let scope =
                if finished { format!("account_id = ? AND {FINISHED_SQL}") } else { "account_id = ?".into() };
            let models = query.select_json(conn, "models", &scope, vec![auth.account_id.into()])?;
            // `{id: Model}` in both generations.
            Ok(models_out(models, Generation::Legacy))
        })
        .await
}

/// POST persist/models/bases/get: `{id: ModelBase}` with one preview per version.
pub async fn get_bases(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let (constraints, finished) = models_request(&body)?;
    let query = Compiled::new(constraints.as_ref(), BASE_COLUMNS)?;
    state
        .db
        .call(move |conn| {
            let bases = query.select_json(conn, "model_bases", "account_id = ?", vec![auth.account_id.into()])?;
            let versions_sql = if finished {
                format!("SELECT json FROM models WHERE model_base_id = ?1 AND {FINISHED_SQL} ORDER BY rowid")
            } else {
                "SELECT json FROM models WHERE model_base_id = ?1 ORDER BY rowid".into()
            };
            let mut versions = conn.prepare(&versions_sql)?;
            let mut out = Vec::new();
            for mut base in bases {
                let id = base["id"].as_str().unwrap_or_default().to_owned();
                let previews = versions
                    .query_map([&id], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .map(|t| parse(t).map(|m| preview(&m)))
                    .collect::<ApiResult<Vec<_>>>()?;
                let invocations: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM invocations WHERE model_id IN (SELECT id FROM models WHERE model_base_id = ?1)",
                    [&id],
                    |r| r.get(0),
                )?;
                base["invocation_count"] = json!(invocations);
                base["model_previews"] = Value::Array(previews);
                out.push((id, base));
            }
            Ok(ordered_object(out))
        })
        .await
}
