//! HTTP plumbing: the error type every handler returns (`{"detail": ...}` bodies), the JSON body
//! extractor (an empty body is `null`, as the Python SDK sends no body for an absent request object),
//! ordered JSON output, and small helpers over `serde_json::Value`.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub type ApiResult<T> = Result<T, ApiError>;

/// The largest request body read (uploads go through their own sockets, not HTTP bodies).
pub const MAX_BODY: usize = 2 << 20;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into() }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub fn gone(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The body of these was not read to its end: the connection cannot carry another request,
        // and saying so keeps a client's pool from reusing it (its next request would meet a reset).
        if matches!(self.status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            // The ownership triggers' (db.rs) own message, which names no client value.
            Some(rusqlite::ErrorCode::ConstraintViolation) if e.to_string().contains("norman-taken: ") => {
                let text = e.to_string();
                ApiError::conflict(text.split("norman-taken: ").nth(1).unwrap_or_default().to_owned())
            }
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                ApiError::conflict("an object with this id (or unique value) already exists")
            }
            // query.rs keeps queries below SQLite's limits; this is the net behind it.
            Some(rusqlite::ErrorCode::TooBig) => {
                ApiError::bad_request("the request is too large for the database")
            }
            code => {
                // The full text (it may quote the SQL) goes to the server's log, not to the client.
                eprintln!("norman serve: database error: {e}");
                ApiError::internal(format!(
                    "database error ({})",
                    code.map_or("unknown".into(), |c| format!("{c:?}"))
                ))
            }
        }
    }
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("Not Found")
}

/// A JSON request body as a `Value`; no body (or only whitespace) is `Value::Null`.
pub struct JsonBody(pub Value);

impl FromRequest<super::AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &super::AppState) -> Result<Self, Self::Rejection> {
        // The body has the same deadline as the headers: a client trickling it cannot hold a handler.
        let limit = state.header_timeout;
        let read = tokio::time::timeout(limit, axum::body::Bytes::from_request(req, state));
        let bytes = read.await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {} s", limit.as_secs()),
            )
        })?;
        let bytes = bytes.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                e.status(),
                format!("the request body is larger than {MAX_BODY} bytes (the limit of this server)"),
            ),
            status => ApiError::new(status, format!("reading the request body: {}", e.body_text())),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// A JSON response built from text, so that object keys keep the order we put them in (serde_json's
/// `Map` sorts them; a sorted query must come back in its order).
pub struct RawJson(pub String);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], self.0).into_response()
    }
}

/// `{key: value, ...}` in the given order.
pub fn ordered_object(entries: impl IntoIterator<Item = (String, Value)>) -> RawJson {
    let mut out = String::from("{");
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    RawJson(out)
}

/// `Json(value)` with the content type set.
pub fn json(value: Value) -> RawJson {
    RawJson(value.to_string())
}

/// A request body read as the library's type for it (`norman::objects`); one that does not fit is a
/// 422 naming the type and the field.
pub fn typed<T: serde::de::DeserializeOwned>(body: &Value, what: &str) -> ApiResult<T> {
    T::deserialize(body).map_err(|e| ApiError::unprocessable(format!("the body is not a {what}: {e}")))
}

/// The body as a JSON object, or a 400 naming what was expected.
pub fn object<'a>(value: &'a Value, what: &str) -> ApiResult<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| ApiError::bad_request(format!("{what} must be a JSON object")))
}

/// The body as a JSON array (of objects checked by the caller).
pub fn array<'a>(value: &'a Value, what: &str) -> ApiResult<&'a Vec<Value>> {
    value.as_array().ok_or_else(|| ApiError::bad_request(format!("{what} must be a JSON array")))
}

/// `f` of each item of the request array `body`, in order, stopping at the first error; each item
/// must be an object (`what` names one in errors).
pub fn each_object<T>(
    body: &Value,
    what: &str,
    mut f: impl FnMut(&Map<String, Value>) -> ApiResult<T>,
) -> ApiResult<Vec<T>> {
    array(body, "the request")?.iter().map(|item| f(object(item, what)?)).collect()
}

/// A required string field.
pub fn req_str<'a>(obj: &'a Map<String, Value>, field: &str) -> ApiResult<&'a str> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(ApiError::unprocessable(format!("field `{field}` is required"))),
        Some(_) => Err(ApiError::unprocessable(format!("field `{field}` must be a string"))),
    }
}

/// An optional string field (absent or null is `None`; another type is a 422).
pub fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> ApiResult<Option<&'a str>> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(ApiError::unprocessable(format!("field `{field}` must be a string"))),
    }
}

/// An id the client may leave for the server to fill: absent, null, "" or "0".
pub fn given_id(obj: &Map<String, Value>, field: &str) -> ApiResult<Option<String>> {
    Ok(opt_str(obj, field)?.filter(|s| !s.is_empty() && *s != "0").map(str::to_owned))
}

/// A string field of a stored object (stored objects were validated on the way in).
pub fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or("")
}

/// The item with `id` of the list `owner[list]` of a stored object.
pub fn item_by_id<'a>(owner: &'a Value, list: &str, id: &str) -> Option<&'a Value> {
    owner[list].as_array().into_iter().flatten().find(|item| str_of(item, "id") == id)
}
