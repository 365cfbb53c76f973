//! `norman serve` as a process: every route family over raw HTTP, uploads through the real upload
//! socket, ranges, expiry, restarts, link downloads and the echo model.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use norman::socket::{SocketClient, SocketPairingResponse};
use norman::{AppConfig, Checksum};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `norman serve`; killed on drop.
struct Server {
    child: Option<Child>,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_norman"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn norman serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        // Drain stderr so the server never blocks on a full pipe; keep it for one-time codes.
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let prefix = "norman serve listening on http://127.0.0.1:";
        assert!(
            line.starts_with(prefix) && line.ends_with("/v0/\n"),
            "first line: {line:?}, stderr: {}",
            stderr.lock().unwrap()
        );
        let base = line.trim_end().trim_start_matches("norman serve listening on ").to_owned();
        Server { child: Some(child), base, stderr }
    }

    fn api(&self) -> Api {
        Api { http: reqwest::Client::new(), base: self.base.clone(), token: None }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "norman serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the `n`th (from 0) stderr line containing `marker`; returns what follows the marker.
    fn stderr_nth(&self, marker: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.stderr.lock().unwrap().clone();
            if let Some(line) = text.lines().filter(|l| l.contains(marker)).nth(n) {
                return line.split(marker).nth(1).unwrap().trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no line {n} with {marker:?} on stderr: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    async fn call(&self, method: Method, route: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{route}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The same account on the norman-core 0.1.0 generation of the API (PROTOCOL.md §5).
    fn legacy(&self) -> Api {
        Api { base: self.base.replace("/v0/", "/legacy/v0/"), ..self.clone() }
    }

    /// A call that must succeed; returns its JSON.
    async fn ok(&self, method: Method, route: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), route, body).await;
        assert!(status.is_success(), "{method} {route}: {status} {value}");
        value
    }

    async fn post(&self, route: &str, body: Value) -> Value {
        self.ok(Method::POST, route, Some(body)).await
    }

    /// The keys of a JSON object answer in the order they were sent (`Value` would sort them).
    async fn keys_in_order(&self, route: &str, body: Value) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        let resp = self
            .http
            .post(format!("{}{route}", self.base))
            .bearer_auth(self.token.as_ref().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        serde_json::from_str::<Keys>(&resp.text().await.unwrap()).unwrap().0
    }

    async fn get_bytes(&self, route: &str, range: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{route}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        req.send().await.unwrap()
    }

    /// Signs up a default account; returns the API for it and its account id.
    async fn signup(&self) -> (Api, String) {
        let login = self.ok(Method::PUT, "authenticate/signup/default", None).await;
        let token = login["access_token"].as_str().unwrap().to_owned();
        let account_id = login["account"]["id"].as_str().unwrap().to_owned();
        assert!(login["account"]["name"].as_str().unwrap().starts_with("account-"), "{login}");
        assert!(login["id_token"].is_string(), "{login}");
        (Api { token: Some(token), ..self.clone() }, account_id)
    }

    /// Flags of one entity, in the current numbering.
    async fn flags_of(&self, entity_id: &str) -> Vec<Value> {
        let flags = self.post("persist/flags/get", entity_filter("Status_Flags", &[entity_id])).await;
        flags.get(entity_id).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    /// Waits until every flag of each entity has `value` (current numbering).
    async fn wait_flags(&self, entities: &[&str], value: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut done = true;
            for entity in entities {
                let flags = self.flags_of(entity).await;
                done &= !flags.is_empty() && flags.iter().all(|f| f["flag_value"] == json!(value));
            }
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "flags of {entities:?} never reached {value}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn entity_filter(table: &str, ids: &[&str]) -> Value {
    json!({"filter": {"join_condition": "AND", "children": [
        {"table": table, "column": "Entity_ID", "operator": "IN", "value": ids}
    ]}, "sort": null, "page": null})
}

fn name_filter(name: &str) -> Value {
    json!({"filter": {"children": [{"table": "Models", "column": "Name", "operator": "=", "value": name}],
        "join_condition": "AND"}})
}

/// A model as the 0.1.0 Python SDK sends it (no model_class), with one File asset.
fn model_json(name: &str, account_id: &str) -> Value {
    json!({
        "id": "0", "account_id": account_id, "version_label": "v1", "short_description": "test model",
        "long_description": "a model for tests", "name": name, "request_type": "Post", "model_type": "Api",
        "hosting_location": "Internal", "output_format": "Binary", "url": null,
        "assets": [{"id": "0", "account_id": account_id, "model_id": "0", "asset_name": "File"}],
        "inputs": [{"id": "0", "model_id": "0", "signature_type": "Input", "data_modality": "File",
            "data_domain": "bytes", "data_encoding": "raw", "receive_format": "File", "http_location": "Body",
            "hidden": false, "display_title": "data"}],
    })
}

/// Creates a model; returns (model id, first asset id).
async fn create_model(api: &Api, account_id: &str, name: &str) -> (String, String) {
    let created = api.post("persist/models/", json!([model_json(name, account_id)])).await;
    let model = &created.as_array().unwrap()[0];
    assert_eq!(model["name"], json!(name));
    (model["id"].as_str().unwrap().to_owned(), model["assets"][0]["id"].as_str().unwrap().to_owned())
}

/// Pairs for the asset, sends `data`, and returns (pairing, sent checksum).
async fn upload_asset(
    api: &Api,
    account_id: &str,
    model_id: &str,
    asset_id: &str,
    data: &[u8],
) -> (SocketPairingResponse, String) {
    let pairing = pair_asset(api, account_id, model_id, asset_id, data.len()).await;
    let sent = send(&pairing, data).await.expect("upload");
    (pairing, sent)
}

async fn pair_asset(
    api: &Api,
    account_id: &str,
    model_id: &str,
    asset_id: &str,
    size: usize,
) -> SocketPairingResponse {
    let pairing = api
        .post(
            "file-push/socket/pair/asset",
            json!({"account_id": account_id, "model_id": model_id, "asset_id": asset_id, "file_size_in_bytes": size}),
        )
        .await;
    assert_eq!(pairing["host"], json!("127.0.0.1"), "{pairing}");
    serde_json::from_value(pairing).unwrap()
}

async fn send(pairing: &SocketPairingResponse, data: &[u8]) -> norman::Result<String> {
    let mut reader = data;
    let summary = SocketClient::new(AppConfig::default()).write_and_digest(pairing, &mut reader).await?;
    Ok(summary.checksum.to_hex())
}

async fn complete(api: &Api, pairing_id: &str, checksum: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "file-push/socket/complete",
        Some(json!({"pairing_id": pairing_id, "checksum": checksum})),
    )
    .await
}

/// The pairing's wire stream for `data`: its authentication header, then the file, encrypted.
fn wire(pairing: &SocketPairingResponse, data: &[u8]) -> Vec<u8> {
    let secrets = pairing.validate().unwrap().secrets;
    let mut state = norman::socket::StreamCipherState::new(&secrets);
    let mut out = secrets.header.expose().to_vec();
    state.apply_unhashed(&mut out).unwrap();
    let mut body = data.to_vec();
    state.seal_in_place(&mut body).unwrap();
    out.extend_from_slice(&body);
    out
}

/// Sends the pairing's stream for `data` on a new connection and waits until the server closes it
/// (it must: the pairing cannot claim another connection).
async fn replay(pairing: &SocketPairingResponse, data: &[u8]) {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", pairing.port as u16)).await.unwrap();
    let _ = conn.write_all(&wire(pairing, data)).await; // the server may reset it mid-way
    let _ = conn.shutdown().await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the replayed connection was not closed: {closed:?}");
}

fn asset_route(account_id: &str, model_id: &str, asset_id: &str) -> String {
    format!("retrieve/asset/{account_id}/{model_id}/{asset_id}")
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_and_unknown_routes_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let anonymous = server.api();
    let legacy = anonymous.legacy();
    for (api, method, route) in [
        (&anonymous, Method::POST, "persist/models/get"),
        (&anonymous, Method::POST, "persist/flags/get"),
        (&anonymous, Method::POST, "file-push/socket/pair/asset"),
        (&anonymous, Method::GET, "file-pull/metadata/x"),
        (&anonymous, Method::GET, "retrieve/asset/a/b/c"),
        (&anonymous, Method::POST, "authenticate/accounts/get"),
        (&legacy, Method::POST, "persist/models/get"),
        (&legacy, Method::POST, "persist/model/flags/get"),
        (&legacy, Method::POST, "persist/accounts/get"),
        (&legacy, Method::GET, "retrieve/asset/a/b/c"),
    ] {
        let (status, body) = api.call(method.clone(), route, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {}{route}", api.base);
        assert!(body["detail"].is_string(), "{body}");
    }
    let forged = Api { token: Some("nat_not-a-token".into()), ..anonymous.clone() };
    assert_eq!(forged.call(Method::POST, "persist/models/get", None).await.0, StatusCode::UNAUTHORIZED);

    let (api, _) = anonymous.signup().await;
    let (status, body) = api.call(Method::POST, "persist/no/such/route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].is_string());
    // Each generation serves only its own routes (§5: the 0.1.0 ones live under /legacy/v0/).
    for (api, route) in [
        (&api, "persist/model/flags/get"),
        (&api, "persist/accounts/get"),
        (&api.legacy(), "persist/flags/get"),
        (&api.legacy(), "authenticate/accounts/get"),
    ] {
        assert_eq!(api.call(Method::POST, route, None).await.0, StatusCode::NOT_FOUND, "{}{route}", api.base);
    }
    // Bad JSON and missing fields are 4xx with a detail.
    let resp = api
        .http
        .post(format!("{}persist/models/", api.base))
        .bearer_auth(api.token.as_ref().unwrap())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("JSON"));
    let (status, body) =
        api.call(Method::POST, "persist/models/", Some(json!([{"short_description": "no name"}]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().contains("name"), "{body}");
}

#[tokio::test]
async fn signup_login_registration_and_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let anonymous = server.api();
    let (api, account_id) = anonymous.signup().await;

    // A fresh default account logs in by id alone, until it registers a factor.
    let login = anonymous.post(&format!("authenticate/login/default/{account_id}"), Value::Null).await;
    assert_eq!(login["account"]["id"], json!(account_id));
    let factors = api
        .ok(Method::GET, &format!("authenticate/register/get/authentication/factors/{account_id}"), None)
        .await;
    assert_eq!(
        factors,
        json!({"account_id": account_id, "api_key_count": 0, "password_count": 0, "verified_email_count": 0})
    );
    api.post(
        "authenticate/register/password",
        json!({"account_id": account_id, "second_token": null, "password": "s3cret"}),
    )
    .await;
    let (status, _) =
        anonymous.call(Method::POST, &format!("authenticate/login/default/{account_id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let login = anonymous
        .post(
            "authenticate/login/password/account_id",
            json!({"account_id": account_id, "password": "s3cret"}),
        )
        .await;
    assert_eq!(login["account"]["id"], json!(account_id));
    let (status, _) = anonymous
        .call(
            Method::POST,
            "authenticate/login/password/account_id",
            Some(json!({"account_id": account_id, "password": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // API keys: generated once, then a login factor (with or without the account id).
    let key = api
        .post(
            "authenticate/generate/key",
            json!({"account_id": account_id, "second_token": login["id_token"]}),
        )
        .await;
    let key = key.as_str().unwrap().to_owned();
    let by_key =
        anonymous.post("authenticate/login/key", json!({"account_id": account_id, "api_key": key})).await;
    assert_eq!(by_key["account"]["id"], json!(account_id));
    assert_eq!(
        anonymous.post("authenticate/login/key", json!({"api_key": key})).await["account"]["id"],
        json!(account_id)
    );
    let factors = api
        .ok(Method::GET, &format!("authenticate/register/get/authentication/factors/{account_id}"), None)
        .await;
    assert_eq!((factors["api_key_count"].as_i64(), factors["password_count"].as_i64()), (Some(1), Some(1)));

    // Password signup returns the Account; login by name works.
    let account = anonymous
        .ok(Method::PUT, "authenticate/signup/password", Some(json!({"name": "ada", "password": "pw1"})))
        .await;
    assert_eq!(account["name"], json!("ada"));
    assert!(account["creation_time"].as_str().unwrap().ends_with('Z'));
    let by_name =
        anonymous.post("authenticate/login/password/name", json!({"name": "ada", "password": "pw1"})).await;
    assert_eq!(by_name["account"]["id"], account["id"]);

    // Key signup returns the key with the account.
    let signed = anonymous.ok(Method::PUT, "authenticate/signup/key", Some(json!({"name": "bot"}))).await;
    let bot_key = signed["api_key"].as_str().unwrap();
    assert_eq!(
        anonymous.post("authenticate/login/key", json!({"api_key": bot_key})).await["account"],
        signed["account"]
    );

    // Email signup, then one-time-code login (the code is printed on stderr).
    let account = anonymous
        .ok(
            Method::PUT,
            "authenticate/signup/email",
            Some(json!({"name": "eve", "email": "Eve@Example.com"})),
        )
        .await;
    anonymous.post("authenticate/login/email/otp", json!({"email": "eve@example.com"})).await;
    // The second code for this address: signup sent the first.
    let code = server.stderr_nth("one-time code for eve@example.com:", 1);
    let (status, _) = anonymous
        .call(
            Method::POST,
            "authenticate/login/email/otp/verify",
            Some(json!({"email": "eve@example.com", "code": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let by_otp = anonymous
        .post("authenticate/login/email/otp/verify", json!({"email": "eve@example.com", "code": code}))
        .await;
    assert_eq!(by_otp["account"]["id"], account["id"]);
    let (status, _) = anonymous
        .call(
            Method::POST,
            "authenticate/login/email/otp/verify",
            Some(json!({"email": "eve@example.com", "code": code})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code is used once");

    // Email registration on an existing account, verified through the path route.
    api.post("authenticate/register/email", json!({"account_id": account_id, "email": "me@example.com"}))
        .await;
    let code = server.stderr_nth("one-time code for me@example.com:", 0);
    api.post(&format!("authenticate/register/email/verify/me@example.com/{code}"), Value::Null).await;
    let factors = api
        .ok(Method::GET, &format!("authenticate/register/get/authentication/factors/{account_id}"), None)
        .await;
    assert_eq!(factors["verified_email_count"], json!(1));
    let by_email = anonymous
        .post("authenticate/login/password/email", json!({"email": "me@example.com", "password": "s3cret"}))
        .await;
    assert_eq!(by_email["account"]["id"], json!(account_id));

    // Accounts routes (current and §5): a token sees and changes only its own account.
    for (api, prefix) in [(&api, "authenticate/accounts"), (&api.legacy(), "persist/accounts")] {
        let all = api.post(&format!("{prefix}/get"), Value::Null).await;
        assert_eq!(all.as_object().unwrap().keys().collect::<Vec<_>>(), vec![&account_id], "{prefix}: {all}");
    }
    let changed = api
        .ok(
            Method::PATCH,
            "authenticate/accounts",
            Some(json!({"account": {"name": "renamed"}, "constraints": null})),
        )
        .await;
    assert_eq!(changed, json!(1));
    let replaced = api
        .legacy()
        .ok(
            Method::PUT,
            "persist/accounts",
            Some(json!([{"id": account_id, "name": "again"}, {"id": account["id"], "name": "x"}])),
        )
        .await;
    assert_eq!(replaced, json!(1), "only the caller's own account is replaced");
    let mine = api
        .post(
            "authenticate/accounts/get",
            json!({"filter": {"children": [{"table": "Accounts", "column": "Name", "value": "again"}]}}),
        )
        .await;
    assert_eq!(mine[&account_id]["name"], json!("again"));
    let created = api.post("authenticate/accounts", json!([{"name": "made"}])).await;
    assert_eq!(created[0]["name"], json!("made"));
    assert_ne!(created[0]["id"], json!("0"));
    let (status, _) = api
        .call(
            Method::GET,
            &format!("authenticate/register/get/authentication/factors/{}", account["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!server.stderr.lock().unwrap().contains("s3cret"), "passwords are never logged");
}

#[tokio::test]
async fn models_versions_bases_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    let (alpha, _) = create_model(&api, &account_id, "alpha").await;
    let (beta, _) = create_model(&api, &account_id, "beta").await;
    let (gamma, _) = create_model(&api, &account_id, "gamma").await;

    // Stored with every sent field plus defaults; the 0.1.0 shape (no model_class) is accepted.
    let got = api
        .post("persist/models/get", json!({"constraints": name_filter("alpha"), "finished_models": false}))
        .await;
    let model = &got[&alpha];
    assert_eq!(got.as_object().unwrap().len(), 1, "{got}");
    assert_eq!(model["long_description"], json!("a model for tests"));
    assert_eq!(model["account_id"], json!(account_id));
    assert!(model.get("model_class").is_none());
    assert_ne!(model["model_base_id"], json!("0"));
    assert_eq!(model["inputs"][0]["model_id"], json!(alpha));
    let time = model["creation_time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == "2025-09-15T12:00:00.123456Z".len(), "{time}");

    // A bare QueryConstraints body works too; IN, LIKE, OR, sort and page are evaluated.
    let q = json!({"filter": {"join_condition": "OR", "children": [
            {"table": "Models", "column": "Name", "operator": "IN", "value": ["alpha", "gamma"]},
            {"table": "Models", "column": "Name", "operator": "LIKE", "value": "be%"}]},
        "sort": {"children": [{"table": "Models", "column": "Name", "direction": "DESC"}]},
        "page": {"limit": 2, "offset": 0}});
    assert_eq!(
        api.keys_in_order("persist/models/get", q.clone()).await,
        vec![gamma.clone(), beta.clone()],
        "DESC, page 1"
    );
    let mut q2 = q.clone();
    q2["page"] = json!({"limit": 2, "offset": 2});
    assert_eq!(api.keys_in_order("persist/models/get", q2.clone()).await, vec![alpha.clone()]);
    q2["sort"]["children"][0]["direction"] = json!("ASC");
    q2["page"] = json!({"limit": null, "offset": 1});
    assert_eq!(api.keys_in_order("persist/models/get", q2).await, vec![beta.clone(), gamma.clone()]);
    let (status, body) = api
        .call(
            Method::POST,
            "persist/models/get",
            Some(json!({"filter": {"children": [{"table": "Models", "column": "Colour", "value": 1}]}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("Colour"), "{body}");
    // finished_models hides models whose assets are not uploaded yet.
    let finished =
        api.post("persist/models/get", json!({"constraints": null, "finished_models": true})).await;
    assert_eq!(finished, json!({}));

    // Versions: add v2 to alpha's base, see both previews, switch the active one.
    let base_id = model["model_base_id"].as_str().unwrap().to_owned();
    let mut v2 = model_json("alpha", &account_id);
    v2["model_base_id"] = json!(base_id);
    v2["version_label"] = json!("v2");
    let added = api.post("persist/models/version", json!([v2])).await;
    let v2_id = added[0]["id"].as_str().unwrap().to_owned();
    let bases =
        api.post("persist/models/bases/get", json!({"constraints": null, "finished_models": false})).await;
    assert_eq!(bases.as_object().unwrap().len(), 3);
    let previews = bases[&base_id]["model_previews"].as_array().unwrap();
    assert_eq!(previews.len(), 2);
    assert_eq!(bases[&base_id]["name"], json!("alpha"));
    assert_eq!(bases[&base_id]["invocation_count"], json!(0));
    let active: Vec<bool> = previews.iter().map(|p| p["active"].as_bool().unwrap()).collect();
    assert_eq!(active, vec![false, true], "the new version is the active one");
    let set = api
        .ok(Method::PATCH, "persist/models/version", Some(json!([{"id": alpha, "account_id": account_id, "version_label": "v1", "short_description": "", "active": true}])))
        .await;
    assert_eq!(set[0]["active"], json!(true));
    let v2_now = api
        .post(
            "persist/models/get",
            json!({"filter": {"children": [{"table": "Models", "column": "ID", "value": v2_id}]}}),
        )
        .await;
    assert_eq!(v2_now[&v2_id]["active"], json!(false));
    let (status, _) = api
        .call(Method::POST, "persist/models/version", Some(json!([model_json("orphan", &account_id)])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a version needs its base");

    // Replace, then delete by constraints.
    let mut replaced = model.clone();
    replaced["short_description"] = json!("changed");
    let out = api.ok(Method::PATCH, "persist/models/", Some(json!([replaced.clone()]))).await;
    assert_eq!(out[0]["id"], json!(alpha));
    assert_eq!(out[0]["short_description"], json!("changed"));
    assert_eq!(out[0]["model_base_id"], json!(base_id));
    // The same write on the 0.1.0 generation answers {id: Model}.
    let out = api.legacy().ok(Method::PATCH, "persist/models/", Some(json!([replaced]))).await;
    assert_eq!(out.as_object().unwrap().len(), 1, "{out}");
    assert_eq!(out[&alpha]["short_description"], json!("changed"));
    let gone = api
        .ok(Method::DELETE, "persist/models/", Some(json!({"filter": {"children": [{"table": "Models", "column": "Name", "operator": "!=", "value": "alpha"}]}})))
        .await;
    assert_eq!(gone, json!(2));
    let left = api.post("persist/models/get", Value::Null).await;
    let mut left: Vec<&String> = left.as_object().unwrap().keys().collect();
    left.sort();
    let mut want = vec![&alpha, &v2_id];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(api.post("persist/models/bases/get", Value::Null).await.as_object().unwrap().len(), 1);

    // Another account sees none of it.
    let (other, other_id) = server.api().signup().await;
    assert_eq!(other.post("persist/models/get", Value::Null).await, json!({}));
    assert_eq!(other.post("persist/models/bases/get", Value::Null).await, json!({}));
    assert_eq!(other.post("persist/flags/get", Value::Null).await, json!({}));
    let mut stolen = model_json("stolen", &account_id);
    stolen["model_base_id"] = json!(base_id);
    let (status, _) = other.call(Method::POST, "persist/models/", Some(json!([stolen]))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "account_id of another account");
    let mut stolen = model_json("stolen", &other_id);
    stolen["model_base_id"] = json!(base_id);
    let (status, _) = other.call(Method::POST, "persist/models/", Some(json!([stolen]))).await;
    assert_eq!(status, StatusCode::CONFLICT, "another account's base");
}

#[tokio::test]
async fn invocations_by_name_history_and_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, _) = create_model(&api, &account_id, "classifier").await;

    let made = api
        .post(
            "persist/invocations",
            json!([{"id": "0", "account_id": account_id, "model_id": model_id, "inputs": [], "outputs": []}]),
        )
        .await;
    let invocation = &made[0];
    let invocation_id = invocation["id"].as_str().unwrap();
    assert_ne!(invocation_id, "0");
    assert_eq!(invocation["inputs"].as_array().unwrap().len(), 1, "inputs come from the model's signatures");
    assert_eq!(invocation["inputs"][0]["invocation_id"], json!(invocation_id));
    assert_eq!(invocation["inputs"][0]["display_title"], json!("data"));

    let by_name = api.post("persist/invocations/by-name", json!({"classifier": 2})).await;
    assert_eq!(by_name.as_array().unwrap().len(), 2);
    assert_eq!(by_name[0]["model_id"], json!(model_id));
    let (status, _) =
        api.call(Method::POST, "persist/invocations/by-name", Some(json!({"missing": 1}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let filter = json!({"filter": {"children": [{"table": "Invocations", "column": "Model_ID", "value": model_id}]},
        "sort": {"children": [{"table": "Invocations", "column": "Creation_Time", "direction": "ASC"}]}, "page": null});
    let all = api.keys_in_order("persist/invocations/get", filter.clone()).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], invocation_id);
    assert_eq!(api.post("persist/invocation/history/get", filter).await.as_object().unwrap().len(), 3);
    let bases = api.post("persist/models/bases/get", Value::Null).await;
    assert_eq!(bases.as_object().unwrap().values().next().unwrap()["invocation_count"], json!(3));

    // Flags exist for each part (legacy numbering: Not_Started = 1).
    let legacy = api
        .legacy()
        .post("persist/invocation/flags/get", entity_filter("Invocation_Flags", &[invocation_id]))
        .await;
    assert_eq!(legacy[invocation_id][0]["flag_name"], json!("Model_Function_Run"));
    assert_eq!(legacy[invocation_id][0]["flag_value"], json!(1));
    let input_id = invocation["inputs"][0]["id"].as_str().unwrap();
    let input_flags =
        api.legacy().post("persist/input/flags/get", entity_filter("Input_Flags", &[input_id])).await;
    assert_eq!(input_flags[input_id].as_array().unwrap().len(), 2);

    // Notifications follow transfers: a failed upload leaves an Error one.
    assert_eq!(api.post("persist/notifications/get", Value::Null).await, json!([]));
    let pairing: SocketPairingResponse = serde_json::from_value(
        api.post(
            "file-push/socket/pair/input",
            json!({"account_id": account_id, "model_id": model_id,
            "invocation_id": invocation_id, "input_id": input_id, "file_size_in_bytes": 3}),
        )
        .await,
    )
    .unwrap();
    let sent = send(&pairing, b"abc").await.unwrap();
    assert_eq!(sent, Checksum::of(b"abc").to_hex());
    let (status, _) = complete(&api, &pairing.pairing_id, "0000000000000000").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let notes = api
        .post("persist/notifications/get", json!({"filter": {"children": [{"table": "Notifications", "column": "Entity_ID", "value": input_id}]}}))
        .await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    assert_eq!(notes[0]["severity"], json!("Error"));
    assert_eq!(notes[0]["model_name"], json!("classifier"));
    // The invocation cannot run: its flag is Error (current numbering 4, legacy 0).
    api.wait_flags(&[invocation_id], 4).await;
}

#[tokio::test]
async fn asset_upload_retrieve_ranges_and_one_connection_per_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, asset_id) = create_model(&api, &account_id, "uploader").await;
    let data = common::random_bytes(3 * 1024 * 1024 + 17, 5);

    let (pairing, sent) = upload_asset(&api, &account_id, &model_id, &asset_id, &data).await;
    assert_eq!(sent, Checksum::of(&data).to_hex());
    let (status, body) = complete(&api, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checksum"], json!(sent));

    // The asset and its model are Finished, in both numberings.
    api.wait_flags(&[&asset_id, &model_id], 3).await;
    let legacy =
        api.legacy().post("persist/model/flags/get", entity_filter("Model_Flags", &[&model_id])).await;
    let names: Vec<&str> =
        legacy[&model_id].as_array().unwrap().iter().map(|f| f["flag_name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["File_EFS_Staging", "File_S3_Storage"]);
    assert!(legacy[&model_id].as_array().unwrap().iter().all(|f| f["flag_value"] == json!(4)), "{legacy}");
    let legacy = api
        .legacy()
        .post(
            "persist/asset/flags/get",
            json!({"filter": {"children": [
        {"table": "Asset_Flags", "column": "Entity_ID", "value": asset_id},
        {"table": "Asset_Flags", "column": "Flag_Value", "value": 4}]}}),
        )
        .await;
    assert_eq!(
        legacy[&asset_id].as_array().unwrap().len(),
        2,
        "legacy Flag_Value filters use legacy numbers"
    );
    // finished_models now lists it.
    let finished =
        api.post("persist/models/get", json!({"constraints": null, "finished_models": true})).await;
    assert!(finished.get(&model_id).is_some());

    // Retrieve the whole file, then ranges.
    let route = asset_route(&account_id, &model_id, &asset_id);
    let resp = api.get_bytes(&route, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], data.len().to_string().as_str());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
    let len = data.len();
    for (range, start, end) in
        [("bytes=0-9", 0, 9), ("bytes=100-", 100, len - 1), ("bytes=-5", len - 5, len - 1)]
    {
        let resp = api.get_bytes(&route, Some(range)).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(resp.headers()["content-range"], format!("bytes {start}-{end}/{len}").as_str(), "{range}");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[start..=end], "{range}");
    }
    let resp = api.get_bytes(&route, Some(&format!("bytes={len}-"))).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()["content-range"], format!("bytes */{len}").as_str());
    assert_eq!(
        api.get_bytes(&asset_route(&account_id, &model_id, "nope"), None).await.status(),
        StatusCode::NOT_FOUND
    );

    // The pairing served its one connection: a replay of its stream stores nothing, and it cannot
    // complete twice.
    replay(&pairing, &common::random_bytes(data.len(), 99)).await;
    let (status, body) = complete(&api, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("already completed"));
    let (status, _) = complete(&api, "no-such-pairing", &sent).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.get_bytes(&route, None).await.bytes().await.unwrap().as_ref(), data.as_slice());

    // A second connection while the first is streaming is not claimed: the first one's bytes count.
    let pairing = pair_asset(&api, &account_id, &model_id, &asset_id, 4).await;
    let first_wire = wire(&pairing, b"abcd");
    let mut first = tokio::net::TcpStream::connect(("127.0.0.1", pairing.port as u16)).await.unwrap();
    first.write_all(&first_wire[..first_wire.len() - 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    replay(&pairing, b"evil").await;
    first.write_all(&first_wire[first_wire.len() - 2..]).await.unwrap();
    first.shutdown().await.unwrap();
    let (status, body) = complete(&api, &pairing.pairing_id, &Checksum::of(b"abcd").to_hex()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.get_bytes(&route, None).await.bytes().await.unwrap().as_ref(), b"abcd");

    // Other accounts can neither read nor pair on it.
    let (other, other_id) = server.api().signup().await;
    assert_eq!(other.get_bytes(&route, None).await.status(), StatusCode::FORBIDDEN);
    let (status, _) = other
        .call(Method::POST, "file-push/socket/pair/asset", Some(json!({"account_id": other_id, "model_id": model_id, "asset_id": asset_id, "file_size_in_bytes": 1})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = complete(&other, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn checksum_mismatch_and_wrong_header_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, asset_id) = create_model(&api, &account_id, "careful").await;
    let data = common::random_bytes(200_000, 9);

    let (pairing, sent) = upload_asset(&api, &account_id, &model_id, &asset_id, &data).await;
    let wrong = Checksum(Checksum::of(&data).0 ^ 1).to_hex();
    let (status, body) = complete(&api, &pairing.pairing_id, &wrong).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("checksum mismatch"), "{body}");
    assert_eq!(
        api.get_bytes(&asset_route(&account_id, &model_id, &asset_id), None).await.status(),
        StatusCode::NOT_FOUND
    );
    api.wait_flags(&[&asset_id], 4).await;
    let (status, _) = complete(&api, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::CONFLICT, "a failed pairing stays failed");

    // A stream encrypted with another authentication header is rejected by the receiver.
    let mut forged = pair_asset(&api, &account_id, &model_id, &asset_id, data.len()).await;
    let mut header = base64_decode(&forged.authentication_header);
    header[0] ^= 0xff;
    forged.authentication_header = common::b64(&header);
    let _ = send(&forged, &data).await; // the server may reset the connection mid-stream
    let (status, body) = complete(&api, &forged.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("authentication header"), "{body}");
    assert_eq!(
        api.get_bytes(&asset_route(&account_id, &model_id, &asset_id), None).await.status(),
        StatusCode::NOT_FOUND
    );
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "no blob and no temporary file is left: {blobs:?}");

    // A short stream is an error too.
    let pairing = pair_asset(&api, &account_id, &model_id, &asset_id, data.len() + 1).await;
    send(&pairing, &data).await.unwrap();
    let (status, body) = complete(&api, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // And a right one afterwards succeeds, moving the flags to Finished.
    let (pairing, sent) = upload_asset(&api, &account_id, &model_id, &asset_id, &data).await;
    assert_eq!(complete(&api, &pairing.pairing_id, &sent).await.0, StatusCode::OK);
    api.wait_flags(&[&asset_id, &model_id], 3).await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

#[tokio::test]
async fn an_unused_pairing_expires() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--pairing-ttl-secs", "1"]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, asset_id) = create_model(&api, &account_id, "slow").await;
    let pairing = pair_asset(&api, &account_id, &model_id, &asset_id, 10).await;
    api.wait_flags(&[&asset_id], 2).await; // In_Progress while the socket waits
    tokio::time::sleep(Duration::from_millis(1500)).await;
    replay(&pairing, b"0123456789").await; // too late: nothing claims it
    let (status, body) = complete(&api, &pairing.pairing_id, &Checksum::of(b"0123456789").to_hex()).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    api.wait_flags(&[&asset_id], 4).await;
}

#[tokio::test]
async fn a_restart_keeps_accounts_models_flags_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, asset_id) = create_model(&api, &account_id, "durable").await;
    let data = common::random_bytes(70_000, 3);
    let (pairing, sent) = upload_asset(&api, &account_id, &model_id, &asset_id, &data).await;
    assert_eq!(complete(&api, &pairing.pairing_id, &sent).await.0, StatusCode::OK);
    // A pairing left open when the server stops is failed at the next start.
    let (_, open_asset) = create_model(&api, &account_id, "interrupted").await;
    let open_model = api.post("persist/models/get", name_filter("interrupted")).await;
    let open_model = open_model.as_object().unwrap().keys().next().unwrap().clone();
    pair_asset(&api, &account_id, &open_model, &open_asset, 5).await;

    let status = server.stop();
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");

    let server = Server::start(dir.path(), &[]);
    let api = Api { base: server.base.clone(), ..api };
    let models = api.post("persist/models/get", name_filter("durable")).await;
    assert_eq!(models[&model_id]["name"], json!("durable"));
    api.wait_flags(&[&asset_id, &model_id], 3).await;
    api.wait_flags(&[&open_asset], 4).await;
    let resp = api.get_bytes(&asset_route(&account_id, &model_id, &asset_id), None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
    let (status, _) = complete(&api, &pairing.pairing_id, &sent).await;
    assert_eq!(status, StatusCode::CONFLICT, "completed before the restart");
}

#[tokio::test]
async fn file_pull_downloads_links_and_tracks_them() {
    let dir = tempfile::tempdir().unwrap();
    // The links are on loopback.
    let server = Server::start(dir.path(), &["--allow-private-links"]);
    let (api, account_id) = server.api().signup().await;
    let (model_id, asset_id) = create_model(&api, &account_id, "pulled").await;
    let content = common::random_bytes(1_000_003, 11);
    let host = format!("http://127.0.0.1:{}", common::link_server(content.clone()).await.0);

    let ids = api
        .post(
            "file-pull/upload/assets",
            json!({"account_id": account_id, "model_id": model_id,
            "links": [format!("{host}/file")], "asset_id": asset_id, "asset_name": "File"}),
        )
        .await;
    assert_eq!(ids, json!([asset_id]));
    api.wait_flags(&[&asset_id, &model_id], 3).await;
    let tracked = api.ok(Method::GET, &format!("file-pull/metadata/{asset_id}"), None).await;
    assert_eq!(tracked["entity_type"], json!("Asset"));
    assert_eq!(tracked["downloaded_bytes"], json!(content.len()));
    assert_eq!(tracked["total_bytes"], json!(content.len()));
    assert_eq!(tracked["file_checksum"], json!(Checksum::of(&content).to_hex()));
    assert_eq!(tracked["file_link"], json!(format!("{host}/file")));
    assert_eq!(tracked["asset"]["id"], json!(asset_id));
    assert_eq!(tracked["model"]["id"], json!(model_id));
    assert_eq!(tracked["download_request"]["links"], json!([format!("{host}/file")]));
    let resp = api.get_bytes(&asset_route(&account_id, &model_id, &asset_id), None).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), content.as_slice());

    // Input links (the 0.1.0 shape) to a new input of an invocation; a failing link ends in Error.
    let invocation = &api.post("persist/invocations/by-name", json!({"pulled": 1})).await[0];
    let invocation_id = invocation["id"].as_str().unwrap();
    let ids = api
        .post(
            "file-pull/upload/inputs",
            json!({"account_id": account_id, "model_id": model_id, "links": [format!("{host}/missing")],
            "signature_id": "0", "invocation_id": invocation_id, "input_id": "0"}),
        )
        .await;
    let input_id = ids[0].as_str().unwrap();
    api.wait_flags(&[input_id], 4).await;
    let tracked = api.ok(Method::GET, &format!("file-pull/metadata/{input_id}"), None).await;
    assert_eq!(tracked["entity_type"], json!("Input"));
    assert_eq!(tracked["invocation"]["id"], json!(invocation_id));
    assert_eq!(tracked["invocation_input"]["id"], json!(input_id));
    let invocation_now = api.post("persist/invocations/get", json!({"filter": {"children": [{"table": "Invocations", "column": "ID", "value": invocation_id}]}})).await;
    assert_eq!(
        invocation_now[invocation_id]["inputs"].as_array().unwrap().len(),
        2,
        "the new input was added"
    );

    // Output links work the same way.
    let ids = api
        .post(
            "file-pull/upload/outputs",
            json!({"account_id": account_id, "model_id": model_id, "links": [format!("{host}/file")],
            "signature_id": "0", "invocation_id": invocation_id, "output_id": "0"}),
        )
        .await;
    let output_id = ids[0].as_str().unwrap();
    api.wait_flags(&[output_id], 3).await;
    let tracked = api.ok(Method::GET, &format!("file-pull/metadata/{output_id}"), None).await;
    assert_eq!(tracked["entity_type"], json!("Output"));
    let route = format!("retrieve/output/{account_id}/{model_id}/{invocation_id}/{output_id}");
    assert_eq!(api.get_bytes(&route, None).await.bytes().await.unwrap().as_ref(), content.as_slice());

    // Only http and https links.
    for link in ["file:///etc/passwd", "ftp://example.com/x", "not a url"] {
        let (status, body) = api
            .call(
                Method::POST,
                "file-pull/upload/assets",
                Some(json!({"account_id": account_id, "model_id": model_id,
                "links": [link], "asset_id": asset_id, "asset_name": "File"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{link}: {body}");
    }
    let (other, _) = server.api().signup().await;
    assert_eq!(
        other.call(Method::GET, &format!("file-pull/metadata/{asset_id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_echo_model_returns_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (api, account_id) = server.api().signup().await;
    create_model(&api, &account_id, "echo").await;
    let invocation = &api.post("persist/invocations/by-name", json!({"echo": 1})).await[0];
    let invocation_id = invocation["id"].as_str().unwrap();
    let model_id = invocation["model_id"].as_str().unwrap();
    let input_id = invocation["inputs"][0]["id"].as_str().unwrap();
    let output_id = invocation["outputs"][0]["id"].as_str().unwrap();
    assert_eq!(invocation["outputs"].as_array().unwrap().len(), 1, "outputs mirror the inputs: {invocation}");

    let data = b"hello, echo".to_vec();
    let pairing: SocketPairingResponse = serde_json::from_value(
        api.post(
            "file-push/socket/pair/input",
            json!({"account_id": account_id, "model_id": model_id,
            "invocation_id": invocation_id, "input_id": input_id, "file_size_in_bytes": data.len()}),
        )
        .await,
    )
    .unwrap();
    let sent = send(&pairing, &data).await.unwrap();
    assert_eq!(complete(&api, &pairing.pairing_id, &sent).await.0, StatusCode::OK);

    api.wait_flags(&[invocation_id, input_id, output_id], 3).await;
    let route = format!("retrieve/output/{account_id}/{model_id}/{invocation_id}/{output_id}");
    assert_eq!(api.get_bytes(&route, None).await.bytes().await.unwrap().as_ref(), data.as_slice());
    let route = format!("retrieve/input/{account_id}/{model_id}/{invocation_id}/{input_id}");
    assert_eq!(api.get_bytes(&route, None).await.bytes().await.unwrap().as_ref(), data.as_slice());
    let wrong = format!("retrieve/output/{account_id}/{model_id}/not-this-invocation/{output_id}");
    assert_eq!(api.get_bytes(&wrong, None).await.status(), StatusCode::NOT_FOUND);

    // The legacy per-entity routes report Finished as 4.
    for (route, table, entity) in [
        ("persist/invocation/flags/get", "Invocation_Flags", invocation_id),
        ("persist/input/flags/get", "Input_Flags", input_id),
        ("persist/output/flags/get", "Output_Flags", output_id),
    ] {
        let flags = api.legacy().post(route, entity_filter(table, &[entity])).await;
        let flags = flags[entity].as_array().unwrap();
        assert!(!flags.is_empty() && flags.iter().all(|f| f["flag_value"] == json!(4)), "{route}: {flags:?}");
        assert_eq!(api.legacy().post(route, entity_filter(table, &["someone-else"])).await, json!({}));
    }
    let output_flags = api.legacy().post("persist/output/flags/get", Value::Null).await;
    assert_eq!(
        output_flags.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec![output_id],
        "entity types are kept apart"
    );
}
