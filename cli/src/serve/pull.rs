//! File pull: the backend fetches files from http(s) links in the background, hashing as it streams
//! into a temporary file that is renamed into the blob store only when the whole body arrived.
//!
//! Each link becomes one entity: the first link goes to the id the request names (when it names
//! one), each further link to a new asset / input / output appended to the model or invocation. The
//! answer lists those entity ids; `file-pull/metadata/{entity_id}` tracks each download.
//!
//! Limits ([`PullLimits`]): a file larger than `--max-pull-bytes` is refused (from its
//! Content-Length, else as soon as the bytes pass the cap), and unless `--allow-private-links` a link
//! may only reach public addresses: literal IPs and resolved names are checked when the request
//! comes in, and again at fetch time by the client's resolver and redirect policy (a name that
//! re-resolves elsewhere, or a redirect to a private address, is refused too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::{post, MethodRouter};
use norman::objects::{
    AssetDownloadRequest, InputDownloadRequest, NormanFileDownloadRequest, OutputDownloadRequest,
};
use norman::streaming::PartFile;
use norman::transfer::Verifier;
use norman::Checksum;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::auth::Auth;
use super::db::{new_id, now, parse};
use super::flags;
use super::http::{item_by_id, json, str_of, typed, ApiError, ApiResult, JsonBody, RawJson};
use super::models::{load_model, save_model};
use super::store::{self, Kind, Target};
use super::AppState;

/// A link that sends nothing for this long is abandoned.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often downloaded_bytes is written while streaming.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Default of `--max-pull-bytes`: 64 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
/// How long resolving a link's host name may take when a request comes in.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed per link.
const MAX_REDIRECTS: usize = 10;

/// What link pulls may fetch.
#[derive(Debug, Clone, Copy)]
pub struct PullLimits {
    pub max_bytes: u64,
    /// `--allow-private-links`: reach loopback, private, link-local and unspecified addresses too.
    pub allow_private: bool,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits { max_bytes: DEFAULT_MAX_BYTES, allow_private: false }
    }
}

const PRIVATE_REFUSED: &str =
    "is a loopback, private, link-local or unspecified address (norman serve --allow-private-links allows it)";

/// Addresses a pull must not reach by default: the server's own host and networks, and addresses
/// that are no destination at all. IPv4 inside IPv6 (mapped, compatible, NAT64) counts as its IPv4.
pub fn is_private(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || a == 0 // "this network"
            || (a == 100 && (b & 0xc0) == 64) // shared address space (carrier NAT)
            || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
            || (a == 198 && (b & 0xfe) == 18) // benchmarking
            || a >= 240 // reserved
    }
    fn v6(ip: Ipv6Addr) -> bool {
        let s = ip.segments();
        let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        if let Some(mapped) = ip.to_ipv4_mapped() {
            return v4(mapped);
        }
        if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
            return v4(embedded); // IPv4-compatible ::a.b.c.d
        }
        if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
            return v4(embedded); // NAT64 64:ff9b::/96
        }
        ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || (s[0] & 0xfe00) == 0xfc00 // unique local
            || (s[0] & 0xffc0) == 0xfe80 // link-local
            || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => v6(ip),
    }
}

/// The IP of a URL whose host is a literal address.
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Whether a redirect to `url` may be followed (names are checked by the resolver when connecting).
fn redirect_allowed(url: &reqwest::Url, allow_private: bool) -> bool {
    allow_private || !literal_ip(url).is_some_and(is_private)
}

/// Resolves names like the system does, refusing names with a private address (so a name cannot
/// lead a pull to the server's own networks, whatever it resolved to when the request came in).
struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| is_private(a.ip())) {
                return Err(
                    format!("the link's host name resolves to an address that {PRIVATE_REFUSED}").into()
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of link pulls, enforcing `limits` on every connection and redirect. No proxy: the
/// address checks must apply to the server that is actually reached.
pub fn client(limits: &PullLimits) -> Result<reqwest::Client, String> {
    let allow_private = limits.allow_private;
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if !redirect_allowed(attempt.url(), allow_private) {
            attempt.error(format!("a redirect to an address that {PRIVATE_REFUSED}"))
        } else {
            attempt.follow()
        }
    });
    let mut builder =
        reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).no_proxy().redirect(redirects);
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicResolver));
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Refuses link `i` when it may reach a private address: a literal one, or a name resolving to one.
/// A name that does not resolve now is left to fail (or not) when fetched.
async fn check_link_host(i: usize, url: &reqwest::Url, limits: &PullLimits) -> ApiResult<()> {
    if limits.allow_private {
        return Ok(());
    }
    let refused = || ApiError::bad_request(format!("links[{i}]: the host {PRIVATE_REFUSED}"));
    if let Some(ip) = literal_ip(url) {
        return if is_private(ip) { Err(refused()) } else { Ok(()) };
    }
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Ok(()) };
    if let Ok(Ok(addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await
    {
        if addrs.into_iter().any(|a| is_private(a.ip())) {
            return Err(refused());
        }
    }
    Ok(())
}

/// `file-pull/upload/{assets,inputs,outputs}`: links to download into entities of `kind`.
pub fn upload(kind: Kind) -> MethodRouter<AppState> {
    post(move |State(state): State<AppState>, auth: Auth, JsonBody(body): JsonBody| {
        submit(state, auth, body, kind)
    })
}

/// A link submission (`AssetDownloadRequest`, `InputDownloadRequest` or `OutputDownloadRequest`),
/// flattened: what [`submit`] needs of any of them.
struct Submission {
    request: NormanFileDownloadRequest,
    /// The asset, input or output the first link fills ("0": a new one).
    entity_id: String,
    /// Inputs and outputs.
    invocation_id: String,
    signature_id: String,
    /// Assets: the name of a new one ("" as 0.1.0 sends none: "File").
    asset_name: String,
}

impl Submission {
    fn read(body: &Value, kind: Kind) -> ApiResult<Self> {
        Ok(match kind {
            Kind::Asset => {
                let r: AssetDownloadRequest = typed(body, "AssetDownloadRequest")?;
                Submission {
                    request: NormanFileDownloadRequest {
                        account_id: r.account_id,
                        model_id: r.model_id,
                        links: r.links,
                    },
                    entity_id: r.asset_id,
                    invocation_id: String::new(),
                    signature_id: String::new(),
                    asset_name: r.asset_name,
                }
            }
            Kind::Input => {
                let r: InputDownloadRequest = typed(body, "InputDownloadRequest")?;
                Submission {
                    request: NormanFileDownloadRequest {
                        account_id: r.account_id,
                        model_id: r.model_id,
                        links: r.links,
                    },
                    entity_id: r.input_id,
                    invocation_id: r.invocation_id,
                    signature_id: r.signature_id,
                    asset_name: String::new(),
                }
            }
            Kind::Output => {
                let r: OutputDownloadRequest = typed(body, "OutputDownloadRequest")?;
                Submission {
                    request: NormanFileDownloadRequest {
                        account_id: r.account_id,
                        model_id: r.model_id,
                        links: r.links,
                    },
                    entity_id: r.output_id,
                    invocation_id: r.invocation_id,
                    signature_id: r.signature_id,
                    asset_name: String::new(),
                }
            }
        })
    }

    /// The entity link `i` fills: the one named for the first link (when it names one), else new.
    fn entity_for(&self, i: usize) -> String {
        Some(&self.entity_id)
            .filter(|id| i == 0 && !id.is_empty() && *id != "0")
            .cloned()
            .unwrap_or_else(new_id)
    }
}

/// Each link checked to be an absolute http(s) URL.
fn check_links(links: &[String]) -> ApiResult<Vec<reqwest::Url>> {
    if links.is_empty() {
        return Err(ApiError::unprocessable("field `links` is empty"));
    }
    links
        .iter()
        .enumerate()
        .map(|(i, text)| {
            // The link is not echoed: it may carry a signature or other secret.
            let url = reqwest::Url::parse(text)
                .map_err(|e| ApiError::bad_request(format!("links[{i}] is not a valid URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ApiError::bad_request(format!(
                    "links[{i}]: scheme `{}` is not allowed (http or https with a host only)",
                    url.scheme()
                )));
            }
            Ok(url)
        })
        .collect()
}

async fn submit(state: AppState, auth: Auth, body: Value, kind: Kind) -> ApiResult<RawJson> {
    let mut submission = Submission::read(&body, kind)?;
    let claimed = &submission.request.account_id;
    if !claimed.is_empty() && claimed != "0" {
        auth.check_account(claimed)?;
    }
    submission.request.account_id = auth.account_id.clone();
    for (i, url) in check_links(&submission.request.links)?.iter().enumerate() {
        check_link_host(i, url, &state.pull).await?;
    }
    let jobs = state
        .db
        .tx(move |conn| {
            let request = serde_json::to_value(&submission.request)
                .map_err(|e| ApiError::internal(format!("encoding the request: {e}")))?;
            let account_id = &submission.request.account_id;
            let mut jobs = Vec::new();
            for (i, link) in submission.request.links.iter().enumerate() {
                let (target, tracked) = match kind {
                    Kind::Asset => track_asset(conn, &submission, i)?,
                    Kind::Input | Kind::Output => track_io(conn, &submission, kind, i)?,
                };
                let mut tracked = tracked;
                tracked["download_request"] = request.clone();
                tracked["file_link"] = json!(link);
                tracked["entity_type"] = json!(kind.entity_type());
                tracked["downloaded_bytes"] = json!(0);
                tracked["total_bytes"] = json!(0);
                tracked["file_checksum"] = json!("");
                conn.execute(
                    "INSERT OR REPLACE INTO downloads (entity_id, account_id, entity_type, state, json, update_time) \
                     VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                    params![target.entity_id, account_id, kind.entity_type(), tracked.to_string(), now()],
                )?;
                store::start_transfer(conn, &target)?;
                jobs.push((target, link.clone()));
            }
            Ok(jobs)
        })
        .await?;
    let ids: Vec<Value> = jobs.iter().map(|(t, _)| json!(t.entity_id)).collect();
    for (target, link) in jobs {
        tokio::spawn(download(state.clone(), target, link));
    }
    Ok(json(Value::Array(ids)))
}

/// Appends `item` to the list `owner[list]`, creating the list if it is not one.
fn push_item(owner: &mut Value, list: &str, item: Value) {
    match owner[list].as_array_mut() {
        Some(items) => items.push(item),
        None => owner[list] = json!([item]),
    }
}

/// The asset link `i` fills, added to the model if new; and the TrackedAssetDownload fields.
fn track_asset(conn: &Connection, submission: &Submission, i: usize) -> ApiResult<(Target, Value)> {
    let (account_id, model_id) = (&submission.request.account_id, &submission.request.model_id);
    let mut model = load_model(conn, account_id, model_id)?;
    let asset_id = submission.entity_for(i);
    let asset = match item_by_id(&model, "assets", &asset_id).cloned() {
        Some(asset) => asset,
        None => {
            let asset = json!({
                "id": asset_id,
                "account_id": account_id,
                "model_id": model_id,
                "asset_name": Some(submission.asset_name.as_str()).filter(|n| !n.is_empty()).unwrap_or("File"),
            });
            push_item(&mut model, "assets", asset.clone());
            save_model(conn, &model)?;
            let names = flags::asset_flag_names(str_of(&asset, "asset_name"));
            flags::set(conn, account_id, &asset_id, "asset", &names, flags::NOT_STARTED)?;
            asset
        }
    };
    let target = Target {
        kind: Kind::Asset,
        account_id: account_id.clone(),
        model_id: model_id.clone(),
        invocation_id: None,
        entity_id: asset_id,
    };
    Ok((target, json!({ "model": model, "asset": asset })))
}

/// The input or output link `i` fills, added to the invocation if new; and the tracked fields.
fn track_io(conn: &Connection, submission: &Submission, kind: Kind, i: usize) -> ApiResult<(Target, Value)> {
    let (list, tracked_field, names) = match kind {
        Kind::Input => ("inputs", "invocation_input", flags::INPUT_FLAGS),
        _ => ("outputs", "invocation_output", flags::OUTPUT_FLAGS),
    };
    let (account_id, model_id) = (&submission.request.account_id, &submission.request.model_id);
    let invocation_id = submission.invocation_id.as_str();
    let mut invocation = store::load_invocation_of(conn, account_id, invocation_id, model_id)?;
    let model = load_model(conn, account_id, model_id)?;
    let entity_id = submission.entity_for(i);
    let signature = match item_by_id(&invocation, list, &entity_id).cloned() {
        Some(signature) => signature,
        None => {
            let signature = json!({
                "id": entity_id,
                "account_id": account_id,
                "model_id": model_id,
                "signature_id": Some(submission.signature_id.as_str()).filter(|s| !s.is_empty()).unwrap_or("0"),
                "invocation_id": invocation_id,
                "display_title": "",
            });
            push_item(&mut invocation, list, signature.clone());
            store::save_invocation(conn, &invocation)?;
            flags::set(conn, account_id, &entity_id, kind.as_str(), &names, flags::NOT_STARTED)?;
            signature
        }
    };
    let target = Target {
        kind,
        account_id: account_id.to_owned(),
        model_id: model_id.to_owned(),
        invocation_id: Some(invocation_id.to_owned()),
        entity_id,
    };
    let mut tracked = json!({ "model": model, "invocation": invocation });
    tracked[tracked_field] = signature;
    Ok((target, tracked))
}

/// The background half: fetch, then record the outcome.
async fn download(state: AppState, target: Target, link: String) {
    let file_name = new_id();
    let dest = state.blobs.join(&file_name);
    let outcome = match fetch(&state, &target, &link, &dest).await {
        Ok((part, checksum, bytes)) => match part.commit(&dest).await {
            Ok(()) => Ok((checksum, bytes)),
            Err(e) => Err(format!("storing the file: {e}")),
        },
        Err(detail) => Err(detail),
    };
    let blobs = state.blobs.clone();
    let recorded = state
        .db
        .tx(move |conn| match outcome {
            Ok((checksum, bytes)) => {
                conn.execute(
                    "UPDATE downloads SET state = 'finished', downloaded_bytes = ?1, file_checksum = ?2, \
                     update_time = ?3 WHERE entity_id = ?4",
                    params![bytes as i64, checksum.to_hex(), now(), target.entity_id],
                )?;
                store::finish_transfer(conn, &blobs, &target, &file_name, bytes, &checksum.to_hex())
            }
            Err(detail) => {
                conn.execute(
                    "UPDATE downloads SET state = 'error', detail = ?1, update_time = ?2 WHERE entity_id = ?3",
                    params![detail, now(), target.entity_id],
                )?;
                store::fail_transfer(conn, &target, &detail)
            }
        })
        .await;
    if let Err(e) = recorded {
        let _ = std::fs::remove_file(&dest);
        eprintln!("norman serve: recording a download: {}", e.detail);
    }
}

async fn fetch(
    state: &AppState,
    target: &Target,
    link: &str,
    dest: &std::path::Path,
) -> Result<(PartFile, Checksum, u64), String> {
    // Errors leave the URL out: it may carry a secret.
    let mut response =
        state.http.get(link).send().await.map_err(|e| format!("fetching the link: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("the link answered HTTP {}", response.status()));
    }
    let total = response.content_length();
    let max = state.pull.max_bytes;
    if let Some(total) = total {
        if total > max {
            return Err(format!(
                "the link announces {total} bytes, more than the limit of {max} (norman serve --max-pull-bytes)"
            ));
        }
        progress(state, &target.entity_id, "total_bytes", total).await;
    }
    let mut part = PartFile::create_beside(dest).await.map_err(|e| e.to_string())?;
    let mut hasher = Verifier::new(total);
    let mut last = Instant::now();
    loop {
        let chunk = tokio::time::timeout(IDLE_TIMEOUT, response.chunk())
            .await
            .map_err(|_| format!("the link sent nothing for {} s", IDLE_TIMEOUT.as_secs()))?
            .map_err(|e| format!("reading the link: {}", e.without_url()))?;
        let Some(chunk) = chunk else { break };
        if hasher.len() + chunk.len() as u64 > max {
            return Err(format!(
                "the link sent more than the limit of {max} bytes (norman serve --max-pull-bytes)"
            ));
        }
        hasher.update(&chunk);
        part.writer().write_all(&chunk).await.map_err(|e| format!("writing the file: {e}"))?;
        if last.elapsed() >= PROGRESS_EVERY {
            progress(state, &target.entity_id, "downloaded_bytes", hasher.len()).await;
            last = Instant::now();
        }
    }
    let whole = hasher.finish("fetching the link").map_err(|e| e.to_string())?;
    Ok((part, whole.checksum, whole.bytes))
}

async fn progress(state: &AppState, entity_id: &str, column: &'static str, value: u64) {
    let entity_id = entity_id.to_owned();
    // Progress is advisory: a failed write must not fail the download.
    let _ = state
        .db
        .call(move |conn| {
            let sql = match column {
                "total_bytes" => "UPDATE downloads SET total_bytes = ?1 WHERE entity_id = ?2",
                _ => "UPDATE downloads SET downloaded_bytes = ?1 WHERE entity_id = ?2",
            };
            conn.execute(sql, params![value as i64, entity_id])?;
            Ok(())
        })
        .await;
}

/// GET file-pull/metadata/{entity_id}: the TrackedDownload, with its current counters.
pub async fn metadata(
    State(state): State<AppState>,
    auth: Auth,
    Path(entity_id): Path<String>,
) -> ApiResult<RawJson> {
    state
        .db
        .call(move |conn| {
            let row: Option<(String, i64, i64, String)> = conn
                .query_row(
                    "SELECT json, downloaded_bytes, total_bytes, file_checksum FROM downloads \
                     WHERE entity_id = ?1 AND account_id = ?2",
                    [&entity_id, &auth.account_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let (text, downloaded, total, checksum) =
                row.ok_or_else(|| ApiError::not_found(format!("no download tracked for {entity_id}")))?;
            let mut tracked = parse(&text)?;
            tracked["downloaded_bytes"] = json!(downloaded);
            tracked["total_bytes"] = json!(total);
            tracked["file_checksum"] = json!(checksum);
            Ok(json(tracked))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in
            ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]
        {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn redirects_to_private_literals_are_refused() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        // The URL parser normalises other IPv4 spellings, so they are caught too.
        for bad in [
            "http://127.0.0.1/x",
            "http://0x7f.1/x",
            "http://2130706433/x",
            "http://[::1]:80/",
            "http://10.0.0.1/",
        ] {
            assert!(!redirect_allowed(&url(bad), false), "{bad}");
            assert!(redirect_allowed(&url(bad), true), "{bad}");
        }
        // Names are left to the resolver.
        assert!(redirect_allowed(&url("http://example.invalid/x"), false));
        assert!(redirect_allowed(&url("https://8.8.8.8/x"), false));
    }
}
