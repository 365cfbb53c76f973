//! Every service of the client library against a real `norman serve` process: real HTTP, real
//! upload sockets, real SQLite, real files.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use norman::http::HttpClient;
use norman::objects::{
    ChecksumRequest, EntityState, Invocation, InvocationSignature, LoginResponse, Model, QueryConstraints,
    SocketAssetPairingRequest, SortDirection, StatusFlagValue,
};
use norman::services::{UploadTarget, Uploads};
use norman::{Checksum, Error};
use reqwest::Method;

async fn signed_up(serve: &Serve) -> (HttpClient, LoginResponse, String) {
    let anonymous = serve.http();
    let login = anonymous.authenticate().signup_default().await.expect("signup");
    let token = login.access_token.as_ref().expect("token").expose().clone();
    let account_id = login.account.as_ref().expect("account").id.clone();
    (anonymous.with_token(token), login, account_id)
}

async fn create_model(http: &HttpClient, account_id: &str, name: &str) -> Model {
    let model = Model::new(account_id, name, "v1").with_asset("File");
    let created = http.persist().create_models(&[model]).await.expect("create model");
    assert_eq!(created.len(), 1);
    created.into_iter().next().expect("one model")
}

async fn read_all(mut stream: norman::http::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn routes_need_a_token_and_signup_gives_one() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let err = serve.http().status_flags().get_status_flags(None).await.unwrap_err();
    assert_eq!(err.http_status(), Some(401), "{err}");
    let err = serve.http().with_token("not-a-token").persist().get_invocations(None).await.unwrap_err();
    assert_eq!(err.http_status(), Some(401), "{err}");

    let (http, login, account_id) = signed_up(&serve).await;
    assert!(!format!("{login:?}").contains(login.access_token.as_ref().unwrap().expose().as_str()));
    let accounts = http.authenticate().get_accounts(None).await.unwrap();
    assert!(accounts.contains_key(&account_id), "{accounts:?}");
    let again = serve.http().authenticate().login_default(&account_id).await.unwrap();
    assert_eq!(again.account.unwrap().id, account_id);
}

#[tokio::test]
async fn models_are_stored_filtered_sorted_paged_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, _, account_id) = signed_up(&serve).await;
    let mut ids = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let model = create_model(&http, &account_id, name).await;
        assert_ne!(model.id, "0");
        assert_eq!(model.account_id, account_id);
        ids.push(model.id);
    }
    let persist = http.persist();
    let request = |constraints| norman::objects::GetModelsRequest {
        constraints: Some(constraints),
        finished_models: false,
    };
    let by_name =
        persist.get_models(&request(QueryConstraints::equals("Models", "Name", "bravo"))).await.unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name.values().next().unwrap().name, "bravo");

    let page = QueryConstraints::new().sorted_by("Models", "Name", SortDirection::Desc).with_page(2, 0);
    let page = persist.get_models(&request(page)).await.unwrap();
    let mut names: Vec<_> = page.values().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["bravo", "charlie"]);

    let by_ids = persist
        .get_models(&request(QueryConstraints::ids("Models", [ids[0].clone(), ids[2].clone()])))
        .await
        .unwrap();
    assert_eq!(by_ids.len(), 2);

    let deleted = persist.delete_models(&QueryConstraints::ids("Models", [ids[0].clone()])).await.unwrap();
    assert_eq!(deleted, 1);
    let all = persist.get_models(&norman::objects::GetModelsRequest::default()).await.unwrap();
    assert_eq!(all.len(), 2);

    // Another account sees none of them.
    let (other, _, _) = signed_up(&serve).await;
    assert!(other
        .persist()
        .get_models(&norman::objects::GetModelsRequest::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn asset_upload_round_trip_with_progress_flags_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let (http, _, account_id) = signed_up(&serve).await;
    let model = create_model(&http, &account_id, "uploader").await;

    let content = random_bytes(3 * 1024 * 1024 + 17, 5);
    let src = dir.path().join("weights.bin");
    std::fs::write(&src, &content).unwrap();
    let asset_id = model.asset_id("File").unwrap().to_owned();
    let target = UploadTarget::Asset {
        account_id: account_id.clone(),
        model_id: model.id.clone(),
        asset_id: asset_id.clone(),
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let summary = Uploads::new(&http, &serve.config())
        .push_file(&target, &src, move |sent, total| log.lock().unwrap().push((sent, total)))
        .await
        .unwrap();
    assert_eq!(summary.checksum, Checksum::of(&content));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.last(), Some(&(content.len() as u64, content.len() as u64)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress only grows");

    let whole = http.retrieve().get_model_asset(&account_id, &model.id, &asset_id, None).await.unwrap();
    assert_eq!(whole.content_length, Some(content.len() as u64));
    assert!(read_all(whole).await == content);

    let part = http
        .retrieve()
        .get_model_asset(&account_id, &model.id, &asset_id, Some((1000, Some(1999))))
        .await
        .unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(read_all(part).await, content[1000..2000]);
    let tail = http
        .retrieve()
        .get_model_asset(&account_id, &model.id, &asset_id, Some((content.len() as u64 - 5, None)))
        .await
        .unwrap();
    assert_eq!(read_all(tail).await, content[content.len() - 5..]);

    let flags = http.status_flags().get_status_flags(None).await.unwrap();
    let finished: Vec<_> =
        flags.values().flatten().filter(|f| f.flag_value == StatusFlagValue::Finished).collect();
    assert!(!finished.is_empty(), "{flags:?}");
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_and_leaves_nothing_to_retrieve() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, _, account_id) = signed_up(&serve).await;
    let model = create_model(&http, &account_id, "mismatch").await;
    let content = random_bytes(100_000, 8);
    let asset_id = model.asset_id("File").unwrap().to_owned();
    let pairing = http
        .file_push()
        .allocate_socket_for_asset(&SocketAssetPairingRequest {
            account_id: account_id.clone(),
            model_id: model.id.clone(),
            file_size_in_bytes: content.len() as u64,
            asset_id: asset_id.clone(),
        })
        .await
        .unwrap();
    let sent = norman::socket::SocketClient::new(serve.config())
        .write_and_digest(&pairing, &mut &content[..])
        .await
        .unwrap();
    let wrong = Checksum(sent.checksum.0 ^ 1).to_hex();
    let err = http
        .file_push()
        .complete_file_transfer(&ChecksumRequest { pairing_id: pairing.pairing_id.clone(), checksum: wrong })
        .await
        .unwrap_err();
    let status = err.http_status().unwrap_or(0);
    assert!((400..500).contains(&status), "{err}");
    let err = http.retrieve().get_model_asset(&account_id, &model.id, &asset_id, None).await.unwrap_err();
    assert_eq!(err.http_status(), Some(404), "{err}");
    // The pairing is spent: completing it again with the right checksum does not revive it.
    let err = http
        .file_push()
        .complete_file_transfer(&ChecksumRequest {
            pairing_id: pairing.pairing_id,
            checksum: sent.checksum.to_hex(),
        })
        .await
        .unwrap_err();
    assert!(err.http_status().is_some_and(|s| (400..500).contains(&s)), "{err}");
}

#[tokio::test]
async fn echo_model_invocation_round_trip_and_invocation_routes() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, _, account_id) = signed_up(&serve).await;
    let model = create_model(&http, &account_id, "echo").await;
    let mut invocation = Invocation::new(&account_id, &model.id);
    let signature = |title: &str| InvocationSignature {
        account_id: account_id.clone(),
        model_id: model.id.clone(),
        signature_id: "0".into(),
        display_title: title.into(),
        ..InvocationSignature::default()
    };
    invocation.inputs = vec![signature("prompt")];
    invocation.outputs = vec![signature("reply")];
    let created = http.persist().create_invocations(&[invocation]).await.unwrap();
    let invocation = created.into_iter().next().unwrap();
    assert_ne!(invocation.id, "0");
    let input_id = invocation.inputs[0].id.clone();
    let output_id = invocation.outputs[0].id.clone();

    let content = random_bytes(777_777, 3);
    let target = UploadTarget::Input {
        account_id: account_id.clone(),
        model_id: model.id.clone(),
        invocation_id: invocation.id.clone(),
        input_id: input_id.clone(),
    };
    Uploads::new(&http, &serve.config())
        .push_reader(&target, &mut &content[..], content.len() as u64)
        .await
        .unwrap();

    let input = http
        .retrieve()
        .get_invocation_input(&account_id, &model.id, &invocation.id, &input_id, None)
        .await
        .unwrap();
    assert!(read_all(input).await == content);
    let output = http
        .retrieve()
        .get_invocation_output(&account_id, &model.id, &invocation.id, &output_id, None)
        .await
        .unwrap();
    assert!(read_all(output).await == content, "the echo model copies its input to its output");

    let listed = http
        .persist()
        .get_invocations(Some(&QueryConstraints::ids("Invocations", [invocation.id.clone()])))
        .await
        .unwrap();
    assert!(listed.contains_key(&invocation.id));
    let by_name =
        http.persist().create_invocations_by_name(&HashMap::from([("echo".to_string(), 2)])).await.unwrap();
    assert_eq!(by_name.len(), 2);
    assert!(by_name.iter().all(|i| i.model_id == model.id));
    let flags = http.status_flags().get_flags_of(&[&output_id]).await.unwrap();
    assert_eq!(
        norman::objects::entity_state(flags.get(&output_id).map(Vec::as_slice).unwrap_or(&[])),
        EntityState::Done,
        "{flags:?}"
    );
    let _notifications = http.persist().get_notifications(None).await.unwrap();
}

#[tokio::test]
async fn file_pull_fetches_a_link_and_tracks_it() {
    let dir = tempfile::tempdir().unwrap();
    // The link is on loopback.
    let serve = Serve::start(dir.path(), &["--allow-private-links"]);
    let (http, _, account_id) = signed_up(&serve).await;
    let model = create_model(&http, &account_id, "pulled").await;
    let content = random_bytes(400_000, 12);
    let link = serve_once(content.clone());
    let asset_id = model.asset_id("File").unwrap().to_owned();

    let request = norman::objects::AssetDownloadRequest {
        account_id: account_id.clone(),
        model_id: model.id.clone(),
        links: vec![link],
        asset_id: asset_id.clone(),
        asset_name: "File".into(),
    };
    let ids = http.file_pull().submit_asset_links(&request).await.unwrap();
    assert_eq!(ids.len(), 1);
    let mut done = false;
    for _ in 0..100 {
        let meta = http.file_pull().get_download_metadata(&ids[0]).await.unwrap();
        let (downloaded, total) = meta.progress();
        if total > 0 && downloaded == total {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "download finished");
    let got = http.retrieve().get_model_asset(&account_id, &model.id, &asset_id, None).await.unwrap();
    assert!(read_all(got).await == content);

    let bad = norman::objects::AssetDownloadRequest { links: vec!["file:///etc/passwd".into()], ..request };
    let err = http.file_pull().submit_asset_links(&bad).await.unwrap_err();
    assert_eq!(err.http_status(), Some(400), "{err}");
}

/// Serves `body` to one HTTP GET on loopback; returns its URL.
fn serve_once(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/weights.bin", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    url
}

#[tokio::test]
async fn the_generic_request_reaches_any_route_and_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, login, account_id) = signed_up(&serve).await;
    let token = login.access_token.as_ref().unwrap().expose().clone();
    let model = create_model(&http, &account_id, "durable").await;
    let (status, body) = http
        .request(
            Method::POST,
            "persist/models/get",
            Some(&serde_json::json!({"constraints": null, "finished_models": false})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(models.get(&model.id).is_some(), "{models}");
    let (status, _) = http.request(Method::GET, "no/such/route", None).await.unwrap();
    assert_eq!(status, 404);

    assert!(serve.stop().success(), "SIGTERM exits cleanly");
    let serve = Serve::start(dir.path(), &[]);
    let http = serve.http().with_token(token);
    let models = http.persist().get_models(&norman::objects::GetModelsRequest::default()).await.unwrap();
    assert!(models.contains_key(&model.id), "kept across restarts: {models:?}");
}

#[tokio::test]
async fn invalid_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, _, _) = signed_up(&serve).await;
    let (status, body) = http
        .request(Method::POST, "persist/models/", Some(&serde_json::json!({"not": "a list"})))
        .await
        .unwrap();
    assert!((400..500).contains(&status), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("detail"));
    let err = http.retrieve().get_model_asset("a/b", "..", "?x", None).await.unwrap_err();
    assert!(err.http_status().is_some_and(|s| s == 404 || s == 403), "{err}");
    let dead = norman::AppConfig { base_url: "http://127.0.0.1:9/v0".into(), retries: 0, ..serve.config() };
    let err = HttpClient::new(&dead).unwrap().authenticate().signup_default().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn password_and_key_logins_factors_and_accounts() {
    use norman::objects::{
        AccountIdPasswordLoginRequest, ApiKeyLoginRequest, NamePasswordLoginRequest,
        RegisterAuthFactorRequest,
    };
    use norman::Sensitive;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let auth = serve.http();
    let password = Sensitive::new("correct horse battery staple".to_string());
    let account = auth.authenticate().signup_with_password("ada", &password).await.unwrap();
    assert_eq!(account.name, "ada");
    let by_name = auth
        .authenticate()
        .login_password_name(&NamePasswordLoginRequest::new("ada", password.clone()))
        .await
        .unwrap();
    assert_eq!(by_name.account.as_ref().unwrap().id, account.id);
    let by_id = auth
        .authenticate()
        .login_password_account_id(&AccountIdPasswordLoginRequest::new(&account.id, password.clone()))
        .await
        .unwrap();
    let token = by_id.access_token.unwrap().expose().clone();
    let wrong = auth
        .authenticate()
        .login_password_name(&NamePasswordLoginRequest::new("ada", Sensitive::new("nope".to_string())))
        .await
        .unwrap_err();
    assert!(wrong.http_status().is_some_and(|s| s == 401 || s == 403), "{wrong}");
    assert!(!wrong.to_string().contains("correct horse"));

    let http = auth.with_token(token);
    let factors = http.authenticate().get_authentication_factors(&account.id).await.unwrap();
    assert_eq!(factors.account_id, account.id);
    let key = http
        .authenticate()
        .generate_api_key(&RegisterAuthFactorRequest::new(&account.id, None))
        .await
        .unwrap();
    let key = key.as_str().expect("the key as a JSON string").to_owned();
    let with_key =
        auth.authenticate().login_with_key(&ApiKeyLoginRequest::new(&account.id, key)).await.unwrap();
    assert_eq!(with_key.account.unwrap().id, account.id);

    let (login, api_key) = auth.authenticate().signup_with_key("grace").await.unwrap();
    assert_eq!(login.account.unwrap().name, "grace");
    assert!(api_key.is_some_and(|k| !k.expose().is_empty()));

    let accounts = http.authenticate().get_accounts(None).await.unwrap();
    assert_eq!(accounts.get(&account.id).map(|a| a.name.as_str()), Some("ada"));
}

#[tokio::test]
async fn model_versions_bases_updates_and_history() {
    use norman::objects::{GetModelsRequest, ModelPreview};
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (http, _, account_id) = signed_up(&serve).await;
    let v1 = create_model(&http, &account_id, "versioned").await;
    let mut v2 = Model::new(&account_id, "versioned", "v2");
    v2.model_base_id = v1.model_base_id.clone();
    let v2 = http.persist().create_model_versions(&[v2]).await.unwrap().into_iter().next().unwrap();
    assert_eq!(v2.model_base_id, v1.model_base_id);
    assert_ne!(v2.id, v1.id);

    let bases = http.persist().get_model_bases(&GetModelsRequest::default()).await.unwrap();
    let base = bases.get(&v1.model_base_id).expect("the base");
    assert_eq!(base.model_previews.len(), 2, "{base:?}");

    let preview = ModelPreview {
        id: v1.id.clone(),
        model_base_id: v1.model_base_id.clone(),
        active: true,
        ..base.model_previews.iter().find(|p| p.id == v1.id).unwrap().clone()
    };
    let updated = http.persist().update_model_versions(&[preview]).await.unwrap();
    assert!(updated.iter().any(|p| p.id == v1.id && p.active), "{updated:?}");

    let mut renamed = v2.clone();
    renamed.short_description = "now described".into();
    let patched = http.persist().update_models(&[renamed]).await.unwrap();
    assert_eq!(
        patched.iter().map(|m| (m.id.as_str(), m.short_description.as_str())).collect::<Vec<_>>(),
        [(v2.id.as_str(), "now described")]
    );

    let invocation =
        http.persist().create_invocations(&[Invocation::new(&account_id, &v1.id)]).await.unwrap().remove(0);
    let history = http.persist().get_invocation_history(None).await.unwrap();
    assert!(history.contains_key(&invocation.id), "{history:?}");
}

/// The model writes answer `[Model]` under /v0/ and `{id: Model}` under /legacy/v0/ (PROTOCOL.md §2,
/// §5); the client reads both, in request order. A `model_base_id` naming no base creates it.
#[tokio::test]
async fn model_writes_read_both_api_generations() {
    use norman::objects::GetModelsRequest;
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (current, login, account_id) = signed_up(&serve).await;
    let legacy_config =
        norman::AppConfig { base_url: serve.base_url.replace("/v0/", "/legacy/v0/"), ..serve.config() };
    let token = login.access_token.as_ref().unwrap().expose().clone();
    let legacy = HttpClient::new(&legacy_config).unwrap().with_token(token);

    for (generation, http) in [("current", &current), ("legacy", &legacy)] {
        // The raw shapes.
        let raw: Value = http
            .json(
                Method::POST,
                "persist/models/",
                Some(&[Model::new(&account_id, format!("raw-{generation}"), "v1")]),
            )
            .await
            .unwrap();
        match generation {
            "current" => assert!(raw.is_array() && raw[0]["id"].is_string(), "{raw}"),
            _ => assert!(raw.is_object() && raw.as_object().unwrap().len() == 1, "{raw}"),
        }

        // Several models: the answer keeps the request order (names chosen so that neither id nor
        // name order matches it).
        let names = ["zulu", "alpha", "mike", "bravo"].map(|n| format!("{n}-{generation}"));
        let sent: Vec<Model> =
            names.iter().map(|n| Model::new(&account_id, n, "v1").with_asset("File")).collect();
        let created = http.persist().create_models(&sent).await.unwrap();
        let got: Vec<&str> = created.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>(), "{generation}");
        assert!(created.iter().all(|m| m.id != "0" && m.model_base_id != "0" && m.assets[0].id != "0"));

        // A base id nobody has yet: the base is created with it.
        let fresh_base = format!("base-{generation}-{}", created[0].id);
        let mut under_new_base = Model::new(&account_id, format!("based-{generation}"), "v1");
        under_new_base.model_base_id = fresh_base.clone();
        let made = http.persist().create_models(&[under_new_base]).await.unwrap();
        assert_eq!(made[0].model_base_id, fresh_base);
        let bases = http.persist().get_model_bases(&GetModelsRequest::default()).await.unwrap();
        assert_eq!(bases[&fresh_base].model_previews.len(), 1, "{generation}");

        // Versions and updates, in both shapes.
        let mut v2 = Model::new(&account_id, format!("based-{generation}"), "v2");
        v2.model_base_id = fresh_base.clone();
        let mut v3 = v2.clone();
        v3.version_label = "v3".into();
        let versions = http.persist().create_model_versions(&[v2, v3]).await.unwrap();
        assert_eq!(versions.iter().map(|m| m.version_label.as_str()).collect::<Vec<_>>(), ["v2", "v3"]);
        let mut changed = vec![created[2].clone(), created[1].clone()];
        changed[0].short_description = "first".into();
        changed[1].short_description = "second".into();
        let updated = http.persist().update_models(&changed).await.unwrap();
        let got: Vec<(&str, &str)> =
            updated.iter().map(|m| (m.id.as_str(), m.short_description.as_str())).collect();
        assert_eq!(got, [(created[2].id.as_str(), "first"), (created[1].id.as_str(), "second")]);
    }
    // Same data behind both base paths.
    let all = |http: &HttpClient| {
        let http = http.clone();
        async move { http.persist().get_models(&GetModelsRequest::default()).await.unwrap().len() }
    };
    assert_eq!(all(&current).await, all(&legacy).await);
    assert_eq!(all(&current).await, 2 * (1 + 4 + 1 + 2));
}
