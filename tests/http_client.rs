//! HttpClient against a scripted HTTP peer on loopback: retries, backoff limits, errors, timeouts.
//! (The routes themselves are tested against `norman serve` in tests/services.rs.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use norman::http::HttpClient;
use norman::{AppConfig, Error};
use reqwest::Method;

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<String>,
    body: Vec<u8>,
}

/// Answers each connection with the next scripted response (status, body); `None` = never answer.
fn scripted(responses: Vec<Option<(u16, String)>>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v0", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for response in responses {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                headers.push(line);
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen { request_line: request_line.trim_end().into(), headers, body });
            let mut stream = stream;
            match response {
                Some((status, body)) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                None => std::thread::sleep(Duration::from_secs(5)),
            }
        }
    });
    (base, seen)
}

fn client(base: &str, retries: u32) -> HttpClient {
    let config =
        AppConfig { base_url: base.into(), retries, timeout: Duration::from_secs(2), ..AppConfig::default() };
    HttpClient::new(&config).unwrap()
}

#[tokio::test]
async fn idempotent_requests_retry_502_503_504_then_succeed() {
    let (base, seen) = scripted(vec![
        Some((503, "{}".into())),
        Some((502, "{}".into())),
        Some((504, "{}".into())),
        Some((200, "[1,2]".into())),
    ]);
    let got: Vec<i32> = client(&base, 3).json(Method::GET, "x/y", None::<&()>).await.unwrap();
    assert_eq!(got, vec![1, 2]);
    assert_eq!(seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn post_is_not_retried_on_503_and_errors_carry_status_and_excerpt() {
    let (base, seen) = scripted(vec![Some((503, r#"{"detail":"busy"}"#.into())), Some((200, "{}".into()))]);
    let err = client(&base, 3)
        .json::<serde_json::Value>(Method::POST, "persist/flags/get", Some(&serde_json::json!({})))
        .await;
    let err = err.unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert!(
        err.to_string().contains("POST persist/flags/get answered HTTP 503: {\"detail\":\"busy\"}"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_configured_count() {
    let (base, seen) =
        scripted(vec![Some((503, "a".into())), Some((503, "b".into())), Some((503, "c".into()))]);
    let err = client(&base, 1).bytes(Method::GET, "z", None::<&()>).await.unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert!(err.to_string().ends_with(": b"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn requests_carry_json_content_type_bearer_token_and_body_under_the_base_path() {
    let (base, seen) = scripted(vec![Some((200, "{}".into())), Some((200, "{}".into()))]);
    let http = client(&base, 0).with_token("tok-123");
    let _: serde_json::Value =
        http.json(Method::POST, "/persist/flags/get", Some(&serde_json::json!({"a": 1}))).await.unwrap();
    let _: serde_json::Value =
        http.without_token().json(Method::PUT, "authenticate/signup/default", None::<&()>).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].request_line, "POST /v0/persist/flags/get HTTP/1.1");
    let headers = seen[0].headers.join("\n").to_ascii_lowercase();
    assert!(headers.contains("content-type: application/json"), "{headers}");
    assert!(headers.contains("authorization: bearer tok-123"), "{headers}");
    assert_eq!(seen[0].body, br#"{"a":1}"#);
    assert_eq!(seen[1].request_line, "PUT /v0/authenticate/signup/default HTTP/1.1");
    assert!(seen[1].body.is_empty());
    assert!(!seen[1].headers.join("\n").to_ascii_lowercase().contains("authorization"));
}

#[tokio::test]
async fn error_excerpts_are_bounded_and_never_echo_the_token() {
    let echoed = format!("{{\"detail\":\"bad token tok-secret-999\",\"pad\":\"{}\"}}", "x".repeat(5000));
    let (base, _) = scripted(vec![Some((401, echoed.clone()))]);
    let err =
        client(&base, 0).with_token("tok-secret-999").bytes(Method::GET, "a", None::<&()>).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("tok-secret-999"), "{text}");
    assert!(text.contains("<redacted>"));
    match &err {
        Error::Http { body, status: 401, .. } => {
            assert!(body.excerpt.len() <= norman::http::ERROR_EXCERPT_LIMIT + 16);
            assert_eq!(body.full.len(), echoed.len());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_dead_host_is_a_connect_error_after_retries() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let err = client(&format!("http://127.0.0.1:{port}/v0"), 2)
        .bytes(Method::POST, "a", None::<&()>)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "backoff is capped");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let (base, _) = scripted(vec![None]);
    let config =
        AppConfig { base_url: base, retries: 0, timeout: Duration::from_millis(300), ..AppConfig::default() };
    let err = HttpClient::new(&config).unwrap().bytes(Method::GET, "slow", None::<&()>).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn bad_json_is_a_decode_error_and_the_escape_hatch_returns_any_status() {
    let (base, _) = scripted(vec![Some((200, "not json".into())), Some((418, r#"{"teapot":true}"#.into()))]);
    let http = client(&base, 0);
    let err = http.json::<serde_json::Value>(Method::GET, "a", None::<&()>).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let (status, body) = http.request(Method::POST, "b", Some(&serde_json::json!([1]))).await.unwrap();
    assert_eq!(status, 418);
    assert_eq!(&body[..], br#"{"teapot":true}"#);
}

#[tokio::test]
async fn the_token_goes_to_the_base_url_only_whatever_the_route() {
    // `other` stands for any other origin: nothing may reach it, least of all the token.
    let (other, other_seen) = scripted(vec![Some((200, "{}".into())); 64]);
    let other = other.trim_start_matches("http://").trim_end_matches("/v0").to_owned();
    let (base, seen) = scripted(vec![Some((200, "{}".into())); 2]);
    let http = client(&base, 0).with_token("tok-must-stay-home");
    let routes = [
        format!("http://{other}/steal"),
        format!("HTTP://{other}/steal"),
        format!("https://{other}/steal"),
        format!(" http://{other}/steal"),
        format!("\t\nhttp://{other}/steal"),
        format!("ht\ttp://{other}/steal"),
        format!("\\\\{other}/steal"),
        format!("/\\\\{other}/steal"),
        format!("\\/{other}/steal"),
        format!(" //{other}/steal"),
        format!("http://x@{other}/steal"),
        "../steal".to_owned(),
        "%2e%2e/steal".to_owned(),
    ];
    for route in &routes {
        let results = [
            http.request(Method::GET, route, None).await.map(|_| ()),
            http.bytes(Method::POST, route, None::<&()>).await.map(|_| ()),
            http.stream(Method::GET, route, None::<&()>, None).await.map(|_| ()),
        ];
        for result in results {
            assert!(matches!(result, Err(Error::InvalidArgument(_))), "{route:?}: {result:?}");
        }
    }
    // The same client still reaches its own origin, token included; leading slashes only ever
    // mean "under the base path" (PROTOCOL.md §1), so `//host/x` is a path there, not a host.
    let (status, _) = http.request(Method::GET, "persist/x", None).await.unwrap();
    assert_eq!(status, 200);
    let (status, _) = http.request(Method::GET, &format!("//{other}/x"), None).await.unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(other_seen.lock().unwrap().is_empty(), "{:?}", other_seen.lock().unwrap());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].request_line, "GET /v0/persist/x HTTP/1.1");
    assert_eq!(seen[1].request_line, format!("GET /v0/{other}/x HTTP/1.1"));
    assert!(seen[0].headers.iter().any(|h| h == "authorization: Bearer tok-must-stay-home"), "{seen:?}");
}
