//! Authentication: bearer tokens, signup, login, registration of factors, API keys, one-time codes.
//! Secrets (tokens, keys, passwords, codes) are stored only as hashes and never logged or echoed.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::db::{new_id, now, now_ms, parse};
use super::http::{json, object, opt_str, req_str, typed, ApiError, ApiResult, JsonBody, RawJson};
use super::AppState;
use norman::objects::{
    Account, AccountIdPasswordLoginRequest, ApiKeyLoginRequest, EmailOtpLoginRequest,
    EmailOtpVerificationRequest, EmailPasswordLoginRequest, LoginResponse, NamePasswordLoginRequest,
    RegisterAuthFactorRequest,
};

/// The account a valid access token belongs to.
pub struct Auth {
    pub account_id: String,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                token.trim()
            }
            _ => return Err(ApiError::unauthorized("the Authorization header must be `Bearer <token>`")),
        };
        let hash = secret_hash(token);
        let account = state
            .db
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT t.account_id FROM tokens t JOIN accounts a ON a.id = t.account_id \
                         WHERE t.token_hash = ?1 AND t.kind = 'access'",
                        [hash],
                        |row| row.get::<_, String>(0),
                    )
                    .optional()?)
            })
            .await?;
        account
            .map(|account_id| Auth { account_id })
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))
    }
}

impl Auth {
    /// A request naming an account must name the caller's.
    pub fn check_account(&self, account_id: &str) -> ApiResult<()> {
        if account_id == self.account_id {
            Ok(())
        } else {
            Err(ApiError::forbidden("this token belongs to another account"))
        }
    }

    /// The optional `account_id` field of a request must be the caller's when present.
    pub fn check_field(&self, obj: &serde_json::Map<String, Value>) -> ApiResult<()> {
        match opt_str(obj, "account_id")? {
            Some(id) if !id.is_empty() && id != "0" => self.check_account(id),
            _ => Ok(()),
        }
    }
}

/// SHA-256 of a high-entropy secret (token, API key), base64url. Such secrets need no salt.
pub fn secret_hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

fn random_secret(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

/// Argon2id PHC string of a password, on a blocking thread (it is slow on purpose).
async fn hash_password(password: String) -> ApiResult<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| ApiError::internal(format!("salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| ApiError::internal(format!("hashing the password: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("password task: {e}")))?
}

async fn verify_password(password: String, stored: String) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn password_field(obj: &serde_json::Map<String, Value>) -> ApiResult<String> {
    nonempty_password(req_str(obj, "password")?)
}

fn nonempty_password(password: &str) -> ApiResult<String> {
    if password.is_empty() {
        return Err(ApiError::unprocessable("the password must not be empty"));
    }
    Ok(password.to_owned())
}

fn email_field(obj: &serde_json::Map<String, Value>) -> ApiResult<String> {
    normalize_email(req_str(obj, "email")?)
}

fn normalize_email(email: &str) -> ApiResult<String> {
    let email = email.trim().to_ascii_lowercase();
    match email.split_once('@') {
        Some((user, domain)) if !user.is_empty() && !domain.is_empty() => Ok(email),
        _ => Err(ApiError::unprocessable("`email` is not an email address")),
    }
}

pub fn load_account(conn: &Connection, account_id: &str) -> ApiResult<Option<Value>> {
    let text: Option<String> =
        conn.query_row("SELECT json FROM accounts WHERE id = ?1", [account_id], |r| r.get(0)).optional()?;
    text.map(|t| parse(&t)).transpose()
}

/// Inserts an account from what the client sent (or nothing), filling id, creation_time and name.
pub fn insert_account(conn: &Connection, sent: Option<&serde_json::Map<String, Value>>) -> ApiResult<Value> {
    let mut account = sent.cloned().unwrap_or_default();
    let id = match account.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id != "0" => id.to_owned(),
        _ => new_id(),
    };
    account.insert("id".into(), json!(id));
    if !matches!(account.get("creation_time"), Some(Value::String(_))) {
        account.insert("creation_time".into(), json!(now()));
    }
    if !matches!(account.get("name"), Some(Value::String(s)) if !s.is_empty()) {
        let short: String = id.chars().filter(|c| *c != '-').take(8).collect();
        account.insert("name".into(), json!(format!("account-{short}")));
    }
    let account = Value::Object(account);
    conn.execute(
        "INSERT INTO accounts (id, name, creation_time, json) VALUES (?1, ?2, ?3, ?4)",
        params![id, account["name"].as_str(), account["creation_time"].as_str(), account.to_string()],
    )?;
    Ok(account)
}

/// Issues a fresh access and id token for `account_id`: the LoginResponse, as JSON.
fn issue_login(conn: &Connection, account_id: &str) -> ApiResult<Value> {
    let stored = load_account(conn, account_id)?.ok_or_else(|| ApiError::unauthorized("no such account"))?;
    let account =
        Account::deserialize(&stored).map_err(|e| ApiError::internal(format!("stored account: {e}")))?;
    let login = LoginResponse {
        account: Some(account),
        access_token: Some(random_secret("nat_").into()),
        id_token: Some(random_secret("nit_").into()),
    };
    let time = now();
    for (token, kind) in [(&login.access_token, "access"), (&login.id_token, "id")] {
        let token = token.as_ref().map(|t| t.expose().as_str()).unwrap_or_default();
        conn.execute(
            "INSERT INTO tokens (token_hash, account_id, kind, creation_time) VALUES (?1, ?2, ?3, ?4)",
            params![secret_hash(token), account_id, kind, time],
        )?;
    }
    serde_json::to_value(&login).map_err(|e| ApiError::internal(format!("encoding the login: {e}")))
}

fn factor_counts(conn: &Connection, account_id: &str) -> ApiResult<(i64, i64, i64)> {
    let count = |sql: &str| conn.query_row(sql, [account_id], |r| r.get::<_, i64>(0));
    Ok((
        count("SELECT COUNT(*) FROM api_keys WHERE account_id = ?1")?,
        count("SELECT COUNT(*) FROM passwords WHERE account_id = ?1")?,
        count("SELECT COUNT(*) FROM emails WHERE account_id = ?1 AND verified = 1")?,
    ))
}

const OTP_TTL_MS: i64 = 10 * 60 * 1000;
const OTP_ATTEMPTS: i64 = 5;

/// Makes a new one-time code for `email` and prints it on stderr (this backend sends no mail).
fn send_otp(conn: &Connection, email: &str) -> ApiResult<()> {
    let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    conn.execute(
        "INSERT OR REPLACE INTO otps (email, code_hash, expires_at, attempts) VALUES (?1, ?2, ?3, 0)",
        params![email, secret_hash(&format!("{email}\n{code}")), now_ms() + OTP_TTL_MS],
    )?;
    eprintln!("norman serve: one-time code for {email}: {code}");
    Ok(())
}

/// Checks and consumes a one-time code; a right one marks the email verified.
fn verify_email(conn: &Connection, email: &str, code: &str) -> ApiResult<()> {
    let row: Option<(String, i64, i64)> = conn
        .query_row("SELECT code_hash, expires_at, attempts FROM otps WHERE email = ?1", [email], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((stored, expires_at, attempts)) = row else {
        return Err(ApiError::unauthorized("no one-time code is pending for this email"));
    };
    if expires_at < now_ms() || attempts >= OTP_ATTEMPTS {
        conn.execute("DELETE FROM otps WHERE email = ?1", [email])?;
        return Err(ApiError::unauthorized("the one-time code expired; ask for a new one"));
    }
    let given = secret_hash(&format!("{email}\n{}", code.trim()));
    if bool::from(given.as_bytes().ct_eq(stored.as_bytes())) {
        conn.execute("DELETE FROM otps WHERE email = ?1", [email])?;
        conn.execute("UPDATE emails SET verified = 1 WHERE email = ?1", [email])?;
        Ok(())
    } else {
        conn.execute("UPDATE otps SET attempts = attempts + 1 WHERE email = ?1", [email])?;
        Err(ApiError::unauthorized("wrong one-time code"))
    }
}

fn login_failed() -> ApiError {
    ApiError::unauthorized("invalid credentials")
}

// ---- login (no token) ----

pub async fn login_default(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            if load_account(conn, &account_id)?.is_none() {
                return Err(login_failed());
            }
            if factor_counts(conn, &account_id)? != (0, 0, 0) {
                return Err(ApiError::unauthorized(
                    "this account has a password, API key or email: log in with it",
                ));
            }
            issue_login(conn, &account_id)
        })
        .await
        .map(json)
}

pub async fn login_key(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<RawJson> {
    let request: ApiKeyLoginRequest = typed(&body, "ApiKeyLoginRequest")?;
    let hash = secret_hash(request.api_key.expose());
    let claimed = Some(request.account_id).filter(|id| !id.is_empty());
    state
        .db
        .tx(move |conn| {
            let owner: Option<String> = conn
                .query_row("SELECT account_id FROM api_keys WHERE key_hash = ?1", [hash], |r| r.get(0))
                .optional()?;
            match (owner, claimed) {
                (Some(owner), Some(claimed)) if owner != claimed => Err(login_failed()),
                (Some(owner), _) => issue_login(conn, &owner),
                (None, _) => Err(login_failed()),
            }
        })
        .await
        .map(json)
}

/// Password login where `lookup` finds candidate account ids from the request.
async fn login_password(
    state: AppState,
    candidates: impl FnOnce(&Connection) -> ApiResult<Vec<String>> + Send + 'static,
    password: String,
) -> ApiResult<RawJson> {
    let hashes = state
        .db
        .call(move |conn| {
            let mut out = Vec::new();
            for account_id in candidates(conn)? {
                let hash: Option<String> = conn
                    .query_row("SELECT hash FROM passwords WHERE account_id = ?1", [&account_id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if let Some(hash) = hash {
                    out.push((account_id, hash));
                }
            }
            Ok(out)
        })
        .await?;
    for (account_id, hash) in hashes {
        if verify_password(password.clone(), hash).await {
            return state.db.tx(move |conn| issue_login(conn, &account_id)).await.map(json);
        }
    }
    Err(login_failed())
}

pub async fn login_password_account_id(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let request: AccountIdPasswordLoginRequest = typed(&body, "AccountIDPasswordLoginRequest")?;
    let account_id = request.account_id;
    let password = nonempty_password(request.password.expose())?;
    login_password(state, move |_| Ok(vec![account_id]), password).await
}

pub async fn login_password_name(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let request: NamePasswordLoginRequest = typed(&body, "NamePasswordLoginRequest")?;
    let name = request.name;
    let password = nonempty_password(request.password.expose())?;
    let candidates = move |conn: &Connection| {
        let mut stmt = conn.prepare("SELECT id FROM accounts WHERE name = ?1 ORDER BY rowid")?;
        let ids = stmt.query_map([name], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    };
    login_password(state, candidates, password).await
}

pub async fn login_password_email(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let request: EmailPasswordLoginRequest = typed(&body, "EmailPasswordLoginRequest")?;
    let email = normalize_email(&request.email)?;
    let password = nonempty_password(request.password.expose())?;
    let candidates = move |conn: &Connection| {
        let id: Option<String> = conn
            .query_row("SELECT account_id FROM emails WHERE email = ?1 AND verified = 1", [email], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(id.into_iter().collect())
    };
    login_password(state, candidates, password).await
}

pub async fn login_email_otp(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<RawJson> {
    let request: EmailOtpLoginRequest = typed(&body, "EmailOtpLoginRequest")?;
    let email = normalize_email(&request.email)?;
    state
        .db
        .call(move |conn| {
            let known = email_owner(conn, &email)?;
            // The answer is the same either way, so it does not tell who has an account.
            if known.is_some() {
                send_otp(conn, &email)?;
            }
            Ok(json(Value::Null))
        })
        .await
}

pub async fn login_email_otp_verify(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let request: EmailOtpVerificationRequest = typed(&body, "EmailOTPVerificationRequest")?;
    let email = normalize_email(&request.email)?;
    let code = request.code;
    // Not one transaction: a wrong code must still count as an attempt.
    state
        .db
        .call(move |conn| {
            let account_id = email_owner(conn, &email)?;
            let account_id = account_id.ok_or_else(login_failed)?;
            verify_email(conn, &email, code.expose())?;
            issue_login(conn, &account_id)
        })
        .await
        .map(json)
}

// ---- signup (no token) ----

pub async fn signup_default(State(state): State<AppState>) -> ApiResult<RawJson> {
    state
        .db
        .tx(|conn| {
            let account = insert_account(conn, None)?;
            issue_login(conn, account["id"].as_str().unwrap_or_default())
        })
        .await
        .map(json)
}

fn named(obj: &serde_json::Map<String, Value>) -> ApiResult<serde_json::Map<String, Value>> {
    let name = req_str(obj, "name")?;
    if name.trim().is_empty() {
        return Err(ApiError::unprocessable("`name` must not be empty"));
    }
    let mut sent = serde_json::Map::new();
    sent.insert("name".into(), json!(name));
    Ok(sent)
}

pub async fn signup_password(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<RawJson> {
    let obj = object(&body, "SignupPasswordRequest")?;
    let sent = named(obj)?;
    let hash = hash_password(password_field(obj)?).await?;
    state
        .db
        .tx(move |conn| {
            let account = insert_account(conn, Some(&sent))?;
            conn.execute(
                "INSERT INTO passwords (account_id, hash, update_time) VALUES (?1, ?2, ?3)",
                params![account["id"].as_str(), hash, now()],
            )?;
            Ok(json(account))
        })
        .await
}

pub async fn signup_email(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<RawJson> {
    let obj = object(&body, "SignupEmailRequest")?;
    let sent = named(obj)?;
    let email = email_field(obj)?;
    state
        .db
        .tx(move |conn| {
            let taken = email_owner(conn, &email)?;
            if taken.is_some() {
                return Err(ApiError::conflict("this email already belongs to an account"));
            }
            let account = insert_account(conn, Some(&sent))?;
            conn.execute(
                "INSERT INTO emails (email, account_id, verified, creation_time) VALUES (?1, ?2, 0, ?3)",
                params![email, account["id"].as_str(), now()],
            )?;
            send_otp(conn, &email)?;
            Ok(json(account))
        })
        .await
}

fn new_api_key(conn: &Connection, account_id: &str) -> ApiResult<String> {
    let key = random_secret("nak_");
    conn.execute(
        "INSERT INTO api_keys (key_hash, account_id, creation_time) VALUES (?1, ?2, ?3)",
        params![secret_hash(&key), account_id, now()],
    )?;
    Ok(key)
}

/// SignupKeyResponse {account, api_key}, with the LoginResponse tokens beside it.
pub async fn signup_key(State(state): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<RawJson> {
    let obj = object(&body, "SignupKeyRequest")?;
    let sent = named(obj)?;
    state
        .db
        .tx(move |conn| {
            let account = insert_account(conn, Some(&sent))?;
            let account_id = account["id"].as_str().unwrap_or_default().to_owned();
            let key = new_api_key(conn, &account_id)?;
            let mut login = issue_login(conn, &account_id)?;
            login["api_key"] = json!(key);
            Ok(json(login))
        })
        .await
}

// ---- registration (token) ----

pub async fn factors(
    State(state): State<AppState>,
    auth: Auth,
    Path(account_id): Path<String>,
) -> ApiResult<RawJson> {
    auth.check_account(&account_id)?;
    state
        .db
        .call(move |conn| {
            let (keys, passwords, emails) = factor_counts(conn, &account_id)?;
            Ok(json(json!({
                "account_id": account_id,
                "api_key_count": keys,
                "password_count": passwords,
                "verified_email_count": emails,
            })))
        })
        .await
}

/// RegisterAuthFactorRequest: `account_id` must be the caller's; a `second_token`, when sent, must be
/// a live token (access or id) of the same account.
fn check_factor_request(
    conn: &Connection,
    auth: &Auth,
    obj: &serde_json::Map<String, Value>,
) -> ApiResult<()> {
    check_factor(conn, auth, req_str(obj, "account_id")?, opt_str(obj, "second_token")?)
}

fn check_factor(
    conn: &Connection,
    auth: &Auth,
    account_id: &str,
    second_token: Option<&str>,
) -> ApiResult<()> {
    auth.check_account(account_id)?;
    if let Some(second) = second_token {
        let owner: Option<String> = conn
            .query_row("SELECT account_id FROM tokens WHERE token_hash = ?1", [secret_hash(second)], |r| {
                r.get(0)
            })
            .optional()?;
        if owner.as_deref() != Some(auth.account_id.as_str()) {
            return Err(ApiError::unauthorized("second_token is not a valid token of this account"));
        }
    }
    Ok(())
}

/// POST generate/key: the new API key as a JSON string. It is shown once; only its hash is kept.
pub async fn generate_key(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let request: RegisterAuthFactorRequest = typed(&body, "RegisterAuthFactorRequest")?;
            let second = request.second_token.as_ref().map(|t| t.expose().as_str());
            check_factor(conn, &auth, &request.account_id, second)?;
            Ok(json(json!(new_api_key(conn, &auth.account_id)?)))
        })
        .await
}

pub async fn register_password(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    let obj = object(&body, "RegisterPasswordRequest")?.clone();
    let hash = hash_password(password_field(&obj)?).await?;
    state
        .db
        .tx(move |conn| {
            check_factor_request(conn, &auth, &obj)?;
            conn.execute(
                "INSERT OR REPLACE INTO passwords (account_id, hash, update_time) VALUES (?1, ?2, ?3)",
                params![auth.account_id, hash, now()],
            )?;
            Ok(json(Value::Null))
        })
        .await
}

pub async fn register_email(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let obj = object(&body, "RegisterEmailRequest")?;
            check_factor_request(conn, &auth, obj)?;
            let email = email_field(obj)?;
            match email_owner(conn, &email)? {
                Some(owner) if owner != auth.account_id => {
                    return Err(ApiError::conflict("this email already belongs to another account"))
                }
                Some(_) => {}
                None => {
                    conn.execute(
                        "INSERT INTO emails (email, account_id, verified, creation_time) VALUES (?1, ?2, 0, ?3)",
                        params![email, auth.account_id, now()],
                    )?;
                }
            }
            send_otp(conn, &email)?;
            Ok(json(Value::Null))
        })
        .await
}

pub async fn register_email_verify(
    State(state): State<AppState>,
    auth: Auth,
    Path((email, code)): Path<(String, String)>,
) -> ApiResult<RawJson> {
    let email = normalize_email(&email)?;
    state
        .db
        .call(move |conn| {
            check_own_email(conn, &auth, &email)?;
            verify_email(conn, &email, &code)?;
            Ok(json(Value::Null))
        })
        .await
}

pub async fn register_email_resend(
    State(state): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<RawJson> {
    state
        .db
        .tx(move |conn| {
            let obj = object(&body, "ResendEmailVerificationCodeRequest")?;
            check_factor_request(conn, &auth, obj)?;
            let email = email_field(obj)?;
            check_own_email(conn, &auth, &email)?;
            send_otp(conn, &email)?;
            Ok(json(Value::Null))
        })
        .await
}

/// The account an email is registered to, verified or not.
fn email_owner(conn: &Connection, email: &str) -> ApiResult<Option<String>> {
    Ok(conn.query_row("SELECT account_id FROM emails WHERE email = ?1", [email], |r| r.get(0)).optional()?)
}

/// Fails unless `email` is registered to the caller's account.
fn check_own_email(conn: &Connection, auth: &Auth, email: &str) -> ApiResult<()> {
    if email_owner(conn, email)?.as_deref() != Some(auth.account_id.as_str()) {
        return Err(ApiError::not_found("this email is not registered to this account"));
    }
    Ok(())
}

/// Used by accounts.rs to wipe an account's credentials with it.
pub fn delete_credentials(conn: &Connection, account_id: &str) -> ApiResult<()> {
    for sql in [
        "DELETE FROM tokens WHERE account_id = ?1",
        "DELETE FROM api_keys WHERE account_id = ?1",
        "DELETE FROM passwords WHERE account_id = ?1",
        "DELETE FROM emails WHERE account_id = ?1",
    ] {
        conn.execute(sql, [account_id])?;
    }
    Ok(())
}
