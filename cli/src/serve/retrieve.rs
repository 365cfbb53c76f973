//! Retrieve: streams a stored blob from disk (never loaded whole), with single-range support.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::auth::Auth;
use super::http::{ApiError, ApiResult};
use super::store::{self, Kind};
use super::AppState;

pub async fn asset(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((account_id, model_id, asset_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    serve(state, auth, headers, Kind::Asset, account_id, model_id, None, asset_id).await
}

pub async fn input(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((account_id, model_id, invocation_id, input_id)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    serve(state, auth, headers, Kind::Input, account_id, model_id, Some(invocation_id), input_id).await
}

pub async fn output(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    Path((account_id, model_id, invocation_id, output_id)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    serve(state, auth, headers, Kind::Output, account_id, model_id, Some(invocation_id), output_id).await
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    state: AppState,
    auth: Auth,
    headers: HeaderMap,
    kind: Kind,
    account_id: String,
    model_id: String,
    invocation_id: Option<String>,
    entity_id: String,
) -> ApiResult<Response> {
    auth.check_account(&account_id)?;
    let blobs = state.blobs.clone();
    let what = format!("{} {entity_id}", kind.as_str());
    let blob = state
        .db
        .call(move |conn| {
            store::find_blob(conn, &blobs, kind, &account_id, &model_id, invocation_id.as_deref(), &entity_id)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no stored file for {what}")))?;
    let mut file = match tokio::fs::File::open(&blob.path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no stored file for {what}")))
        }
        Err(e) => return Err(ApiError::internal(format!("opening the stored file: {e}"))),
    };
    let size = blob.size;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|v| parse_range(v, size));
    let (status, start, len) = match range {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0, size),
        Some(RangeSpec::Unsatisfiable) => {
            let mut response =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("range outside 0-{size}"))
                    .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
        Some(RangeSpec::Bytes(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(|e| ApiError::internal(format!("seeking: {e}")))?;
    }
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), 256 * 1024));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1)) {
            out.insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Serve the whole file: no usable single range (malformed, several, or not bytes).
    Ignore,
    Unsatisfiable,
    /// Inclusive byte positions.
    Bytes(u64, u64),
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes (RFC 9110 §14.1.2).
fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return RangeSpec::Ignore };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeSpec::Ignore };
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeSpec::Ignore,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(size.saturating_sub(n), size - 1),
        },
        (first, last) => {
            let Some(start) = number(first) else { return RangeSpec::Ignore };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeSpec::Ignore,
                }
            };
            if start >= size {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Bytes(start, end.min(size - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-9", 100), Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Bytes(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), Bytes(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=x-1", 100), Ignore);
    }
}
