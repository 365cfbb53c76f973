//! Accounts routes, served under `authenticate/accounts` (/v0/) and `persist/accounts` (/legacy/v0/).
//! A token sees and changes only its own account; accounts it creates are new default-login accounts.

use axum::extract::State;
use norman::objects::UpdateAccountsRequest;
use rusqlite::params;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{delete_credentials, insert_account, Auth};
use super::http::{each_object, json, ApiError, ApiResult, JsonBody, RawJson};
use super::query::{Columns, Compiled};
use super::AppState;

const COLUMNS: Columns =
    &[("ID", "id"), ("Account_ID", "id"), ("Name", "name"), ("Creation_Time", "creation_time")];

pub async fn get_accounts(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let query = Compiled::from_body(&body, COLUMNS)?;
    state
        .db
        .call(move |conn| query.select_by_id(conn, "accounts", "id = ?", vec![auth.account_id.into()]))
        .await
}

pub async fn create_accounts(
    State(state): State<AppState>,
    _auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let created = each_object(&body, "an Account", |obj| {
                super::http::req_str(obj, "name")?;
                insert_account(conn, Some(obj))
            })?;
            Ok(json(Value::Array(created)))
        })
        .await
}

/// PUT [Account]: replaces the caller's account (matched by id); returns how many were replaced.
pub async fn replace_accounts(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let counts = each_object(&body, "an Account", |obj| {
                let id = super::http::req_str(obj, "id")?;
                let name = super::http::req_str(obj, "name")?;
                if id != auth.account_id {
                    return Ok(0);
                }
                let Some(old) = super::auth::load_account(conn, id)? else { return Ok(0) };
                let mut new = obj.clone();
                if !matches!(new.get("creation_time"), Some(Value::String(_))) {
                    new.insert("creation_time".into(), old["creation_time"].clone());
                }
                let new = Value::Object(new);
                Ok(conn.execute(
                    "UPDATE accounts SET name = ?1, creation_time = ?2, json = ?3 WHERE id = ?4",
                    params![name, new["creation_time"].as_str(), new.to_string(), id],
                )?)
            })?;
            Ok(json(json!(counts.iter().sum::<usize>())))
        })
        .await
}

/// PATCH {account: AccountUpdate, constraints}: sets the non-null fields on the caller's account if
/// it matches the constraints; returns how many accounts changed.
pub async fn update_accounts(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let request = UpdateAccountsRequest::deserialize(&body)
        .map_err(|e| ApiError::unprocessable(format!("the body is not an UpdateAccountsRequest: {e}")))?;
    let update = request.account.fields;
    if let Some(name) = update.get("name") {
        if !(name.is_null() || name.is_string()) {
            return Err(ApiError::unprocessable("field `name` must be a string"));
        }
    }
    let query = Compiled::new(request.constraints.as_ref(), COLUMNS)?;
    state
        .db
        .tx(move |conn| {
            let accounts = query.select_json_unpaged(
                conn,
                "accounts",
                "id = ?",
                vec![auth.account_id.clone().into()],
            )?;
            let mut count = 0;
            for mut account in accounts {
                for (key, value) in &update {
                    // The id and creation time are the server's.
                    if !value.is_null() && key != "id" && key != "creation_time" {
                        account[key] = value.clone();
                    }
                }
                count += conn.execute(
                    "UPDATE accounts SET name = ?1, json = ?2 WHERE id = ?3",
                    params![account["name"].as_str(), account.to_string(), auth.account_id],
                )?;
            }
            Ok(json(json!(count)))
        })
        .await
}

/// DELETE QueryConstraints: deletes the caller's account if it matches, with its credentials, data and
/// files; its id is never issued again (db.rs).
pub async fn delete_accounts(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let query = Compiled::from_body(&body, COLUMNS)?;
    let account_id = auth.account_id.clone();
    let count = state
        .db
        .tx(move |conn| {
            let sql = query.sql_unpaged("DELETE FROM accounts", "id = ?");
            let count = conn.execute(
                &sql,
                rusqlite::params_from_iter(query.params_unpaged(vec![account_id.clone().into()])),
            )?;
            if count > 0 {
                delete_credentials(conn, &account_id)?;
                super::store::delete_account_data(conn, &account_id)?;
            }
            Ok(count)
        })
        .await?;
    if count > 0 {
        // Its uploads in flight stop; nothing of theirs can be stored any more (the models are gone).
        super::uploads::abandon_account(&state, &auth.account_id);
    }
    Ok(json(json!(count)))
}
