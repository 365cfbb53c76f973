//! `norman serve` limits, against a real process: header and keep-alive deadlines, shutdown whatever
//! clients do, link pulls (private addresses, size cap) and queries too large for SQLite.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use norman::socket::{SocketClient, SocketPairingResponse};
use norman::Checksum;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    account_id: String,
}

impl Api {
    async fn signup(base: &str) -> Api {
        let http = reqwest::Client::new();
        let login: Value = http
            .put(format!("{base}authenticate/signup/default"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: base.to_owned(),
            token: login["access_token"].as_str().unwrap().to_owned(),
            account_id: login["account"]["id"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: Method, route: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{route}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, route: &str, body: Value) -> Value {
        let (status, value) = self.call(Method::POST, route, Some(body)).await;
        assert!(status.is_success(), "{route}: {status} {value}");
        value
    }

    /// A model with one File asset: (model id, asset id).
    async fn model(&self, name: &str) -> (String, String) {
        let model = json!({"account_id": self.account_id, "version_label": "v1", "short_description": "",
            "long_description": "", "name": name, "request_type": "Post", "model_type": "Api",
            "hosting_location": "Internal", "output_format": "Binary",
            "assets": [{"account_id": self.account_id, "asset_name": "File"}]});
        let created = self.post("persist/models/", json!([model])).await;
        (created[0]["id"].as_str().unwrap().into(), created[0]["assets"][0]["id"].as_str().unwrap().into())
    }

    async fn pair(&self, model_id: &str, asset_id: &str, size: usize) -> SocketPairingResponse {
        let pairing = self
            .post(
                "file-push/socket/pair/asset",
                json!({"account_id": self.account_id, "model_id": model_id, "asset_id": asset_id,
                    "file_size_in_bytes": size}),
            )
            .await;
        serde_json::from_value(pairing).unwrap()
    }

    /// Waits until every flag of `entity` is `value` (current numbering).
    async fn wait_flags(&self, entity: &str, value: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let filter = json!({"filter": {"children": [
            {"table": "Status_Flags", "column": "Entity_ID", "value": entity}]}});
        loop {
            let flags = self.post("persist/flags/get", filter.clone()).await;
            let flags = flags[entity].as_array().cloned().unwrap_or_default();
            if !flags.is_empty() && flags.iter().all(|f| f["flag_value"] == json!(value)) {
                return;
            }
            assert!(Instant::now() < deadline, "flags of {entity} never reached {value}: {flags:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The message of the last Error notification about `entity`.
    async fn error_message(&self, entity: &str) -> String {
        let all = self.post("persist/notifications/get", Value::Null).await;
        all.as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|n| n["entity_id"] == json!(entity) && n["severity"] == json!("Error"))
            .map(|n| n["message"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no error notification for {entity}: {all}"))
    }
}

fn server_addr(serve: &Serve) -> SocketAddr {
    serve.base_url.trim_start_matches("http://").trim_end_matches("/v0/").parse().unwrap()
}

/// Writes `prefix`, then one more byte every 200 ms while the server keeps the connection; returns how
/// long the server took to close it (None: still open after 6 s) and what it answered meanwhile.
async fn trickle(addr: SocketAddr, prefix: &'static [u8]) -> (Option<Duration>, Vec<u8>) {
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut answer = Vec::new();
    if !prefix.is_empty() && conn.write_all(prefix).await.is_err() {
        return (Some(start.elapsed()), answer);
    }
    let mut buf = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(6) {
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(start.elapsed()), answer),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]), // an error answer: the close follows
            Err(_) if !prefix.is_empty() => {
                if conn.write_all(b"a").await.is_err() {
                    return (Some(start.elapsed()), answer);
                }
            }
            Err(_) => {}
        }
    }
    (None, answer)
}

/// A connection that made one complete request and then idles; how long until the server closes it.
async fn idle_after_one_request(addr: SocketAddr) -> Option<Duration> {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /v0/nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("\"detail\"") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 404"), "{}", String::from_utf8_lossy(&head));
    let start = Instant::now();
    match tokio::time::timeout(Duration::from_secs(6), conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(start.elapsed()),
        Ok(Ok(n)) => panic!("unexpected bytes on an idle connection: {:?}", &buf[..n]),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--header-timeout-secs", "1"]);
    let addr = server_addr(&serve);
    let mut tasks = tokio::task::JoinSet::new();
    // 200 connections trickling a request head, 100 sending nothing, 50 idle after a request, 20
    // trickling the body of a request that needs no token.
    const SLOW_BODY: &[u8] = b"POST /v0/authenticate/login/key HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"api_key\": \"";
    for i in 0..370 {
        tasks.spawn(async move {
            match i {
                350.. => {
                    let (closed, answer) = trickle(addr, SLOW_BODY).await;
                    let text = String::from_utf8_lossy(&answer);
                    assert!(text.starts_with("HTTP/1.1 408") && text.contains("within 1 s"), "{text}");
                    ("slow body", closed)
                }
                0..200 => (
                    "trickling",
                    trickle(addr, b"GET /v0/persist/models/get HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.0,
                ),
                200..300 => ("silent", trickle(addr, b"").await.0),
                _ => ("idle keep-alive", idle_after_one_request(addr).await),
            }
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(done) = tasks.join_next().await {
        let (kind, closed) = done.unwrap();
        let took = closed.unwrap_or_else(|| panic!("a {kind} connection was still open after 6 s"));
        assert!(took >= Duration::from_millis(700), "a {kind} connection closed too early: {took:?}");
        slowest = slowest.max(took);
    }
    assert!(slowest < Duration::from_secs(4), "slowest close took {slowest:?}");
    eprintln!("370 connections closed, the slowest after {slowest:?}");
    // Meanwhile and afterwards, ordinary requests are served.
    let api = Api::signup(&serve.base_url).await;
    assert_eq!(api.call(Method::POST, "persist/models/get", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_ends_the_server_in_seconds_whatever_clients_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path(), &[]);
    let addr = server_addr(&serve);
    let api = Api::signup(&serve.base_url).await;
    let (model_id, asset_id) = api.model("kept").await;
    let (pending_model, pending_asset) = api.model("in-flight").await;

    // An acknowledged upload.
    let data = random_bytes(200_000, 3);
    let pairing = api.pair(&model_id, &asset_id, data.len()).await;
    let sent = SocketClient::new(serve.config()).write_and_digest(&pairing, &mut &data[..]).await.unwrap();
    let checksum = sent.checksum.to_hex();
    api.post("file-push/socket/complete", json!({"pairing_id": pairing.pairing_id, "checksum": checksum}))
        .await;

    // What clients hold open: a half-sent request line, a request whose body stops half-way, an
    // idle keep-alive connection, and an upload connection that sends nothing yet.
    let mut half_line = TcpStream::connect(addr).await.unwrap();
    half_line.write_all(b"POST /v0/persist/mod").await.unwrap();
    let mut half_body = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v0/persist/models/get HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"constraints\"",
        api.token
    );
    half_body.write_all(head.as_bytes()).await.unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /v0/nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let in_flight = api.pair(&pending_model, &pending_asset, 1000).await;
    let _upload = TcpStream::connect((in_flight.host.as_str(), in_flight.port as u16)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Blocking this test's runtime is fine: nothing it runs needs to move meanwhile.
    let (status, took) = serve.stop_within(Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    eprintln!("SIGTERM to exit: {took:?}");
    drop((half_line, half_body, idle));

    // Nothing acknowledged is lost; the interrupted upload is cleanly over.
    let serve = Serve::start(dir.path(), &[]);
    let api = Api { base: serve.base_url.clone(), ..api };
    let resp = api
        .http
        .get(format!("{}retrieve/asset/{}/{model_id}/{asset_id}", api.base, api.account_id))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().as_ref() == data.as_slice());
    let (status, body) = api
        .call(
            Method::POST,
            "file-push/socket/complete",
            Some(json!({"pairing_id": in_flight.pairing_id, "checksum": Checksum::of(&[0; 1000]).to_hex()})),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    api.wait_flags(&pending_asset, 4).await;
}

#[tokio::test]
async fn link_pulls_refuse_private_addresses_and_cap_the_size() {
    let content = random_bytes(5000, 4);
    let (port, accepted) = link_server(content.clone()).await;

    // By default: no link to a loopback, private, link-local or unspecified address, however spelled
    // (names are resolved first). None of these is ever connected to.
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let api = Api::signup(&serve.base_url).await;
    let (model_id, asset_id) = api.model("pulled").await;
    for link in [
        format!("http://127.0.0.1:{port}/file"),
        format!("http://localhost:{port}/file"),
        format!("http://[::1]:{port}/file"),
        format!("http://[::ffff:127.0.0.1]:{port}/file"),
        format!("http://2130706433:{port}/file"),
        format!("http://0.0.0.0:{port}/file"),
        // Private, link-local and other non-loopback ranges are checked by pull.rs's unit tests
        // without a network: a test never names an address that a regression would send to.
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "file-pull/upload/assets",
                Some(json!({"account_id": api.account_id, "model_id": model_id, "links": [link],
                    "asset_id": asset_id, "asset_name": "File"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{link}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("--allow-private-links") && !detail.contains(&link), "{link}: {detail}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a refused link was fetched");
    drop(serve);

    // Allowed, but capped: a file over the cap fails whether its length is announced or not; one at
    // the cap arrives whole.
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--allow-private-links", "--max-pull-bytes", "4999"]);
    let api = Api::signup(&serve.base_url).await;
    let (model_id, _) = api.model("capped").await;
    for (path, expected) in [("file", "announces 5000 bytes"), ("stream", "sent more than the limit")] {
        let ids = api
            .post(
                "file-pull/upload/assets",
                json!({"account_id": api.account_id, "model_id": model_id,
                    "links": [format!("http://127.0.0.1:{port}/{path}")], "asset_id": "0", "asset_name": "File"}),
            )
            .await;
        let id = ids[0].as_str().unwrap();
        api.wait_flags(id, 4).await;
        let message = api.error_message(id).await;
        assert!(message.contains(expected) && message.contains("--max-pull-bytes"), "{path}: {message}");
    }
    drop(serve);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["--allow-private-links", "--max-pull-bytes", "5000"]);
    let api = Api::signup(&serve.base_url).await;
    let (model_id, _) = api.model("at-the-cap").await;
    let ids = api
        .post(
            "file-pull/upload/assets",
            json!({"account_id": api.account_id, "model_id": model_id,
                "links": [format!("http://127.0.0.1:{port}/stream")], "asset_id": "0", "asset_name": "File"}),
        )
        .await;
    api.wait_flags(ids[0].as_str().unwrap(), 3).await;
}

#[tokio::test]
async fn queries_too_large_for_sqlite_are_400_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let api = Api::signup(&serve.base_url).await;
    api.model("queried").await;
    let legacy = Api { base: api.base.replace("/v0/", "/legacy/v0/"), ..api.clone() };

    let ids: Vec<String> = (0..40_000).map(|i| format!("id-{i}")).collect();
    let in_40k = json!({"filter": {"children": [{"table": "Models", "column": "ID", "operator": "IN", "value": ids}]}});
    let or_40k: Vec<Value> = (0..40_000).map(|i| json!({"table": "t", "value": i})).collect();
    let or_40k = json!({"filter": {"join_condition": "OR", "children": or_40k}});
    for (api, route, body, limit) in [
        (
            &api,
            "persist/models/get",
            json!({"constraints": in_40k, "finished_models": false}),
            "10000 values",
        ),
        (&api, "persist/invocations/get", in_40k.clone(), "10000 values"),
        (&api, "persist/flags/get", or_40k.clone(), "1000 nodes"),
        (&legacy, "persist/model/flags/get", or_40k.clone(), "1000 nodes"),
        (
            &legacy,
            "persist/models/get",
            json!({"constraints": or_40k, "finished_models": false}),
            "1000 nodes",
        ),
    ] {
        let (status, answer) = api.call(Method::POST, route, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(limit) && !detail.contains("SELECT"), "{route}: {detail}");
    }
    // A body too large to read at all is refused naming that limit.
    let big: Vec<Value> = (0..40_000)
        .map(|i| json!({"table": "Status_Flags", "column": "Entity_ID", "operator": "=", "value": format!("{i:036}")}))
        .collect();
    let big = json!({"filter": {"join_condition": "OR", "children": big}});
    let (status, answer) = api.call(Method::POST, "persist/flags/get", Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("2097152 bytes"), "{answer}");
    // Just under the limits is fine.
    let ids: Vec<String> = (0..10_000).map(|i| format!("id-{i}")).collect();
    let in_10k = json!({"filter": {"children": [{"table": "Models", "column": "ID", "operator": "IN", "value": ids}]}});
    assert_eq!(
        api.call(Method::POST, "persist/invocations/get", Some(in_10k)).await,
        (StatusCode::OK, json!({}))
    );
    let or_999: Vec<Value> = (0..998).map(|i| json!({"table": "t", "value": i})).collect();
    let or_999 = json!({"filter": {"join_condition": "OR", "children": or_999}});
    assert_eq!(api.call(Method::POST, "persist/flags/get", Some(or_999)).await, (StatusCode::OK, json!({})));
}
