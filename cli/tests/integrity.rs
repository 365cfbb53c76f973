//! `norman serve` as attackers and crashes see it: one account never reaches another's data whatever
//! ids it sends, deleted accounts stay gone, acknowledged uploads survive SIGKILL, and open pairings
//! are capped per account and cost no descriptor before their connection arrives.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Serve;
use norman::socket::{SocketClient, SocketPairingResponse};
use norman::{AppConfig, Checksum};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    account_id: String,
}

impl Api {
    fn anonymous(base: &str) -> Api {
        Api { http: reqwest::Client::new(), base: base.to_owned(), token: None, account_id: String::new() }
    }

    async fn call(&self, method: Method, route: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.try_call(method, route, body).await.unwrap()
    }

    /// A call whose transport may fail (the server was killed).
    async fn try_call(
        &self,
        method: Method,
        route: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut req = self.http.request(method, format!("{}{route}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn ok(&self, method: Method, route: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), route, body).await;
        assert!(status.is_success(), "{method} {route}: {status} {value}");
        value
    }

    async fn post(&self, route: &str, body: Value) -> Value {
        self.ok(Method::POST, route, Some(body)).await
    }

    async fn signup(base: &str) -> Api {
        let anonymous = Api::anonymous(base);
        let login = anonymous.ok(Method::PUT, "authenticate/signup/default", None).await;
        Api {
            token: Some(login["access_token"].as_str().unwrap().to_owned()),
            account_id: login["account"]["id"].as_str().unwrap().to_owned(),
            ..anonymous
        }
    }

    /// Creates a model with the given asset ids (named File); returns the stored model.
    async fn create_model(&self, name: &str, asset_ids: &[&str]) -> Value {
        let (status, body) =
            self.call(Method::POST, "persist/models/", Some(json!([model(name, asset_ids)]))).await;
        assert!(status.is_success(), "{status} {body}");
        first_model(&body)
    }

    async fn upload(&self, model: &Value, asset_id: &str, data: &[u8]) -> Result<(), String> {
        let pairing = self.pair(model, asset_id, data.len()).await?;
        let sent = send(&pairing, data).await.map_err(|e| e.to_string())?;
        let (status, body) = self.complete(&pairing.pairing_id, &sent).await;
        if status != StatusCode::OK {
            return Err(format!("complete: {status} {body}"));
        }
        Ok(())
    }

    async fn pair(
        &self,
        model: &Value,
        asset_id: &str,
        size: usize,
    ) -> Result<SocketPairingResponse, String> {
        let request = json!({"account_id": self.account_id, "model_id": model["id"], "asset_id": asset_id,
            "file_size_in_bytes": size});
        let (status, body) =
            self.try_call(Method::POST, "file-push/socket/pair/asset", Some(request)).await?;
        if status != StatusCode::OK {
            return Err(format!("pair: {status} {body}"));
        }
        Ok(serde_json::from_value(body).unwrap())
    }

    async fn complete(&self, pairing_id: &str, checksum: &str) -> (StatusCode, Value) {
        let body = json!({"pairing_id": pairing_id, "checksum": checksum});
        self.call(Method::POST, "file-push/socket/complete", Some(body)).await
    }

    async fn retrieve(&self, model: &Value, asset_id: &str) -> (StatusCode, Vec<u8>) {
        let route =
            format!("{}retrieve/asset/{}/{}/{asset_id}", self.base, self.account_id, str(&model["id"]));
        let resp = self.http.get(route).bearer_auth(self.token.as_ref().unwrap()).send().await.unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    /// Flag values of one entity (current numbering).
    async fn flag_values(&self, entity_id: &str) -> Vec<i64> {
        let filter = json!({"filter": {"children": [
            {"table": "Status_Flags", "column": "Entity_ID", "operator": "=", "value": entity_id}]}});
        let flags = self.post("persist/flags/get", filter).await;
        flags[entity_id].as_array().into_iter().flatten().map(|f| f["flag_value"].as_i64().unwrap()).collect()
    }
}

fn str(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A model as the Python SDK sends it, with one File asset per id and one input signature.
fn model(name: &str, asset_ids: &[&str]) -> Value {
    let assets: Vec<Value> = asset_ids.iter().map(|id| json!({"id": id, "asset_name": "File"})).collect();
    json!({
        "id": "0", "version_label": "v1", "short_description": "test model", "name": name,
        "request_type": "Post", "model_type": "Api", "hosting_location": "Internal", "output_format": "Binary",
        "assets": assets,
        "inputs": [{"id": "0", "signature_type": "Input", "data_modality": "File", "display_title": "data"}],
    })
}

/// The first model of a create answer: `[Model]` (current API) or `{id: Model}` (0.1.0).
fn first_model(body: &Value) -> Value {
    match body {
        Value::Array(items) => items[0].clone(),
        Value::Object(map) => map.values().next().cloned().unwrap(),
        other => panic!("not a models answer: {other}"),
    }
}

async fn send(pairing: &SocketPairingResponse, data: &[u8]) -> norman::Result<String> {
    let mut reader = data;
    let summary = SocketClient::new(AppConfig::default()).write_and_digest(pairing, &mut reader).await?;
    Ok(summary.checksum.to_hex())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

fn blob_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_taken(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(str(&body["detail"]).contains("another account"), "{body}");
}

/// Account A with a model whose asset holds `data`; returns (A, A's model, asset id).
async fn victim(base: &str, data: &[u8]) -> (Api, Value, String) {
    let a = Api::signup(base).await;
    let asset_id = unique("asset");
    let model = a.create_model("victim", &[&asset_id]).await;
    a.upload(&model, &asset_id, data).await.unwrap();
    assert_eq!(a.flag_values(&asset_id).await, vec![3, 3]);
    (a, model, asset_id)
}

/// A's asset is as it was: its bytes, its Finished flags.
async fn assert_intact(a: &Api, model: &Value, asset_id: &str, data: &[u8]) {
    assert_eq!(a.retrieve(model, asset_id).await, (StatusCode::OK, data.to_vec()));
    assert_eq!(a.flag_values(asset_id).await, vec![3, 3]);
    assert_eq!(a.flag_values(str(&model["id"])).await, vec![3, 3]);
}

#[tokio::test]
async fn a_model_with_another_accounts_asset_id_is_refused_and_deleting_models_spares_the_asset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[]);
    let data = common::random_bytes(50_000, 1);
    let (a, a_model, asset_id) = victim(&server.base_url, &data).await;
    let b = Api::signup(&server.base_url).await;

    // The attack: a model of B's carrying A's asset id (then deleting it would take A's file).
    let (status, body) =
        b.call(Method::POST, "persist/models/", Some(json!([model("thief", &[&asset_id])]))).await;
    assert_taken(status, &body);
    // Nor by a new version, by PATCHing an own model, or with A's model id.
    let b_model = b.create_model("mine", &[&unique("asset")]).await;
    let mut patched = b_model.clone();
    patched["assets"].as_array_mut().unwrap().push(json!({"id": asset_id, "asset_name": "File"}));
    let (status, body) = b.call(Method::PATCH, "persist/models/", Some(json!([patched]))).await;
    assert_taken(status, &body);
    let mut version = model("thief", &[&asset_id]);
    version["model_base_id"] = b_model["model_base_id"].clone();
    let (status, body) = b.call(Method::POST, "persist/models/version", Some(json!([version]))).await;
    assert_taken(status, &body);
    let mut same_id = model("thief", &[]);
    same_id["id"] = a_model["id"].clone();
    let (status, _) = b.call(Method::POST, "persist/models/", Some(json!([same_id]))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // B deletes all its models: A's asset keeps its file and flags.
    let (status, body) = b.call(Method::DELETE, "persist/models/", Some(Value::Null)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(1), "B had one model");
    assert_intact(&a, &a_model, &asset_id, &data).await;
    // A still owns the id: A may use it again in a model of its own.
    a.create_model("again", &[&asset_id]).await;
}

#[tokio::test]
async fn an_upload_to_another_accounts_asset_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[]);
    let data = common::random_bytes(40_000, 2);
    let (a, a_model, asset_id) = victim(&server.base_url, &data).await;
    let b = Api::signup(&server.base_url).await;
    let b_model = b.create_model("mine", &[&unique("asset")]).await;

    // Pairing for A's asset id under B's model, and under A's model: neither exists for B.
    let err = b.pair(&b_model, &asset_id, 5).await.unwrap_err();
    assert!(err.starts_with("pair: 404"), "{err}");
    let err = b.pair(&a_model, &asset_id, 5).await.unwrap_err();
    assert!(err.starts_with("pair: 404"), "{err}");
    // A completed pairing id of A's cannot be completed by B either.
    let pairing = a.pair(&a_model, &asset_id, 3).await.unwrap();
    let (status, _) = b.complete(&pairing.pairing_id, &Checksum::of(b"abc").to_hex()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A gives the pairing up by uploading the same bytes again; nothing of B's reached the file.
    let sent = send(&pairing, &data[..3]).await.unwrap();
    assert_eq!(a.complete(&pairing.pairing_id, &sent).await.0, StatusCode::OK);
    assert_intact(&a, &a_model, &asset_id, &data[..3]).await;
    let (status, _) = b.retrieve(&a_model, &asset_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "B's own route has no such asset");
}

#[tokio::test]
async fn an_invocation_reusing_another_accounts_input_id_is_refused_and_its_flags_stay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[]);
    let a = Api::signup(&server.base_url).await;
    let a_model = a.create_model("runner", &[]).await;
    let (input_id, invocation_id) = (unique("input"), unique("invocation"));
    let invocation = json!({"id": invocation_id, "model_id": a_model["id"], "inputs": [{"id": input_id}]});
    a.post("persist/invocations", json!([invocation])).await;
    let data = b"input bytes";
    let request = json!({"account_id": a.account_id, "model_id": a_model["id"], "invocation_id": invocation_id,
        "input_id": input_id, "file_size_in_bytes": data.len()});
    let pairing: SocketPairingResponse =
        serde_json::from_value(a.post("file-push/socket/pair/input", request).await).unwrap();
    let sent = send(&pairing, data).await.unwrap();
    assert_eq!(a.complete(&pairing.pairing_id, &sent).await.0, StatusCode::OK);
    assert_eq!(a.flag_values(&input_id).await, vec![3, 3]);
    let run_before = a.flag_values(&invocation_id).await;

    // The attack: B's invocation carries A's input id (creating it used to reset its flags).
    let b = Api::signup(&server.base_url).await;
    let b_model = b.create_model("mine", &[]).await;
    let stolen = json!({"model_id": b_model["id"], "inputs": [{"id": input_id}]});
    let (status, body) = b.call(Method::POST, "persist/invocations", Some(json!([stolen]))).await;
    assert_taken(status, &body);
    let stolen = json!({"id": invocation_id, "model_id": b_model["id"]});
    let (status, body) = b.call(Method::POST, "persist/invocations", Some(json!([stolen]))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // As an output id too.
    let stolen = json!({"model_id": b_model["id"], "outputs": [{"id": input_id}]});
    let (status, body) = b.call(Method::POST, "persist/invocations", Some(json!([stolen]))).await;
    assert_taken(status, &body);

    assert_eq!(a.flag_values(&input_id).await, vec![3, 3]);
    assert_eq!(a.flag_values(&invocation_id).await, run_before);
    let route = format!("retrieve/input/{}/{}/{invocation_id}/{input_id}", a.account_id, str(&a_model["id"]));
    let resp =
        a.http.get(format!("{}{route}", a.base)).bearer_auth(a.token.as_ref().unwrap()).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data);
    assert!(b.flag_values(&input_id).await.is_empty(), "B sees no flag of A's");
}

#[tokio::test]
async fn a_deleted_account_takes_its_data_and_its_id_is_never_issued_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &[]);
    let data = common::random_bytes(30_000, 3);
    let (a, a_model, asset_id) = victim(&server.base_url, &data).await;
    let keep = Api::signup(&server.base_url).await;
    let keep_asset = unique("asset");
    let keep_model = keep.create_model("bystander", &[&keep_asset]).await;
    keep.upload(&keep_model, &keep_asset, b"stays").await.unwrap();
    assert_eq!(blob_files(dir.path()).len(), 2);
    let open = a.pair(&a_model, &asset_id, 4).await.unwrap();

    let (status, body) = a.call(Method::DELETE, "authenticate/accounts", Some(Value::Null)).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!(1)));
    // Its pairing went with it: a late stream is not claimed, and nothing is written.
    let _ = send(&open, b"late").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Its files are gone from the disk, its token is dead, and its default login refuses.
    assert_eq!(blob_files(dir.path()).len(), 1, "only the bystander's file is left");
    assert_eq!(a.call(Method::POST, "persist/models/get", None).await.0, StatusCode::UNAUTHORIZED);
    let login = format!("authenticate/login/default/{}", a.account_id);
    let anonymous = Api::anonymous(&server.base_url);
    assert_eq!(anonymous.call(Method::POST, &login, None).await.0, StatusCode::UNAUTHORIZED);

    // The attack: re-create the account id, then log into it to reach the old data.
    let b = Api::signup(&server.base_url).await;
    for route in ["authenticate/accounts", "persist/accounts"] {
        let (status, body) =
            b.call(Method::POST, route, Some(json!([{"id": a.account_id, "name": "reborn"}]))).await;
        if status == StatusCode::NOT_FOUND {
            continue; // a route this API generation does not serve
        }
        assert_eq!(status, StatusCode::CONFLICT, "{route}: {body}");
        assert!(str(&body["detail"]).contains("never re-created"), "{body}");
    }
    assert_eq!(anonymous.call(Method::POST, &login, None).await.0, StatusCode::UNAUTHORIZED);
    // The dead account's ids stay taken; its data is gone for every route.
    let (status, body) =
        b.call(Method::POST, "persist/models/", Some(json!([model("heir", &[&asset_id])]))).await;
    assert_taken(status, &body);
    let mut heir = a.clone();
    heir.token = b.token.clone();
    assert_eq!(heir.retrieve(&a_model, &asset_id).await.0, StatusCode::FORBIDDEN);

    // After a restart too, and the bystander keeps everything.
    drop(server);
    let server = Serve::start(dir.path(), &[]);
    let keep = Api { base: server.base_url.clone(), ..keep };
    assert_eq!(keep.retrieve(&keep_model, &keep_asset).await, (StatusCode::OK, b"stays".to_vec()));
    assert_eq!(blob_files(dir.path()).len(), 1);
    let anonymous = Api::anonymous(&server.base_url);
    assert_eq!(anonymous.call(Method::POST, &login, None).await.0, StatusCode::UNAUTHORIZED);
}

/// What the test knows of one asset across kills: the checksum of the last upload the server
/// acknowledged, and of the one whose `complete` got no answer (it may or may not have committed).
#[derive(Default, Clone)]
struct Slot {
    acked: Option<String>,
    in_flight: Option<String>,
}

/// Replaces the asset's file over and over until the server goes away.
async fn keep_replacing(
    api: Api,
    model: Value,
    asset_id: String,
    slots: Slots,
    index: usize,
    seed: u64,
    completing: std::sync::Arc<tokio::sync::Notify>,
) -> usize {
    let mut acks = 0;
    for n in 0u64.. {
        let len = 1 + ((seed.wrapping_mul(2654435761).wrapping_add(n * 7919)) % 50_000) as usize;
        let data = common::random_bytes(len, seed ^ (n << 20));
        let Ok(pairing) = api.pair(&model, &asset_id, data.len()).await else { break };
        let Ok(sent) = send(&pairing, &data).await else { break };
        slots.lock().unwrap()[index].in_flight = Some(sent.clone());
        let request = json!({"pairing_id": pairing.pairing_id, "checksum": sent});
        completing.notify_one();
        let resp = api
            .http
            .post(format!("{}file-push/socket/complete", api.base))
            .bearer_auth(api.token.as_ref().unwrap())
            .json(&request)
            .send()
            .await;
        let Ok(resp) = resp else { break }; // no answer: it may have committed
        let status = resp.status();
        let mut slots = slots.lock().unwrap();
        let slot = &mut slots[index];
        if status == StatusCode::OK {
            slot.acked = slot.in_flight.take();
            acks += 1;
        } else {
            slot.in_flight = None; // a definite refusal stored nothing
        }
    }
    acks
}

/// Kill delays: different in each run (the seed is printed when the test fails).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        eprintln!("kill delay seed {seed}");
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

type Slots = std::sync::Arc<std::sync::Mutex<Vec<Slot>>>;

#[tokio::test]
async fn acknowledged_uploads_survive_sigkill_during_concurrent_replacements() {
    const ASSETS: usize = 6;
    const ROUNDS: u64 = 24;
    let started = Instant::now();
    // On tmpfs when there is one: syncs cost nothing there, so many more uploads (and kills landing
    // mid-replacement) fit in the time; a SIGKILL loses nothing the page cache holds either way.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let server = Serve::start(dir.path(), &[]);
    let api = Api::signup(&server.base_url).await;
    let asset_ids: Vec<String> = (0..ASSETS).map(|_| unique("asset")).collect();
    let ids: Vec<&str> = asset_ids.iter().map(String::as_str).collect();
    let model = api.create_model("crashy", &ids).await;
    let slots: Slots = std::sync::Arc::new(std::sync::Mutex::new(vec![Slot::default(); ASSETS]));
    let mut server = Some(server);
    let mut total_acks = 0;
    let mut jitter = Jitter::new();
    for round in 0..ROUNDS {
        let running = match server.take() {
            Some(s) => s,
            None => Serve::start(dir.path(), &[]),
        };
        let api = Api { base: running.base_url.clone(), ..api.clone() };

        // Every acknowledged upload is there, whole; no file is left that no row names.
        let mut stored = 0;
        for (i, asset_id) in asset_ids.iter().enumerate() {
            let (status, bytes) = api.retrieve(&model, asset_id).await;
            let mut slots = slots.lock().unwrap();
            let slot = &mut slots[i];
            if status == StatusCode::NOT_FOUND && slot.acked.is_none() {
                slot.in_flight = None;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "round {round}: asset {i} lost its acknowledged file");
            let got = Checksum::of(&bytes).to_hex();
            let expected = [&slot.acked, &slot.in_flight];
            assert!(
                expected.iter().any(|c| c.as_deref() == Some(got.as_str())),
                "round {round}: asset {i} holds {got}, expected one of {expected:?}"
            );
            slot.acked = Some(got);
            slot.in_flight = None;
            stored += 1;
        }
        assert_eq!(blob_files(dir.path()).len(), stored, "round {round}: orphan or temporary files left");

        let completing = std::sync::Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = asset_ids
            .iter()
            .enumerate()
            .map(|(i, asset_id)| {
                let (api, model, asset_id, slots) =
                    (api.clone(), model.clone(), asset_id.clone(), slots.clone());
                tokio::spawn(keep_replacing(
                    api,
                    model,
                    asset_id,
                    slots,
                    i,
                    round * 31 + i as u64,
                    completing.clone(),
                ))
            })
            .collect();
        // Some uploads, then a kill a few hundred microseconds after a `complete` left, different in
        // each round: it lands anywhere from receiving the request to removing the replaced file.
        tokio::time::sleep(Duration::from_millis(if round == 0 { 300 } else { 40 })).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), completing.notified()).await;
        let delay = Duration::from_micros(jitter.next() % 10_000);
        let pid = running.pid() as libc::pid_t;
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(delay);
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        })
        .await
        .unwrap();
        running.kill();
        for task in tasks {
            total_acks +=
                tokio::time::timeout(Duration::from_secs(10), task).await.expect("uploader stuck").unwrap();
        }
    }
    assert!(
        total_acks >= ROUNDS as usize,
        "too few uploads were acknowledged to test anything: {total_acks}"
    );
    eprintln!("{ROUNDS} kill rounds, {total_acks} acknowledged uploads, {:?}", started.elapsed());

    // The last round's survivors, checked once more.
    let running = Serve::start(dir.path(), &[]);
    let api = Api { base: running.base_url.clone(), ..api };
    for (i, asset_id) in asset_ids.iter().enumerate() {
        let slot = slots.lock().unwrap()[i].clone();
        let (status, bytes) = api.retrieve(&model, asset_id).await;
        if slot.acked.is_none() && status == StatusCode::NOT_FOUND {
            continue;
        }
        let got = Checksum::of(&bytes).to_hex();
        assert!(
            slot.acked.as_deref() == Some(got.as_str()) || slot.in_flight.as_deref() == Some(got.as_str())
        );
    }
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn open_pairings_are_capped_per_account_and_cost_no_descriptor_until_connected() {
    const CAP: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(dir.path(), &["--max-open-pairings", &CAP.to_string()]);
    let a = Api::signup(&server.base_url).await;
    let asset_id = unique("asset");
    let model = a.create_model("greedy", &[&asset_id]).await;

    // A fills its cap. The server's descriptors do not grow with open pairings (they used to: one
    // listening socket each, until other accounts got "Too many open files").
    let mut pairings = vec![a.pair(&model, &asset_id, 5).await.unwrap()];
    let before = open_descriptors(server.pid());
    for _ in 1..CAP {
        pairings.push(a.pair(&model, &asset_id, 5).await.unwrap());
    }
    let after = open_descriptors(server.pid());
    assert!(after <= before + 2, "{CAP} open pairings took descriptors: {before} -> {after}");
    assert!(pairings.iter().all(|p| p.port == pairings[0].port), "one shared upload port");
    let (status, body) = a
        .call(
            Method::POST,
            "file-push/socket/pair/asset",
            Some(json!({"account_id": a.account_id,
            "model_id": model["id"], "asset_id": asset_id, "file_size_in_bytes": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(str(&body["detail"]).contains(&format!("{CAP} open upload pairings")), "{body}");

    // Another account still pairs and uploads.
    let b = Api::signup(&server.base_url).await;
    let b_asset = unique("asset");
    let b_model = b.create_model("modest", &[&b_asset]).await;
    b.upload(&b_model, &b_asset, b"bees").await.unwrap();
    assert_eq!(b.retrieve(&b_model, &b_asset).await, (StatusCode::OK, b"bees".to_vec()));

    // A's pairings all still work, whichever order their connections come in; a completed one
    // frees its place.
    let last = pairings.pop().unwrap();
    let sent = send(&last, b"hello").await.unwrap();
    assert_eq!(a.complete(&last.pairing_id, &sent).await.0, StatusCode::OK);
    assert_eq!(a.retrieve(&model, &asset_id).await, (StatusCode::OK, b"hello".to_vec()));
    let again = a.pair(&model, &asset_id, 5).await.unwrap();
    let sent = send(&pairings[0], b"first").await.unwrap();
    assert_eq!(a.complete(&pairings[0].pairing_id, &sent).await.0, StatusCode::OK);
    assert_eq!(a.retrieve(&model, &asset_id).await, (StatusCode::OK, b"first".to_vec()));
    assert!(a.pair(&model, &asset_id, 5).await.is_ok());
    drop(again);
}
