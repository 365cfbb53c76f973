//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use norman::socket::{SocketPairingResponse, StreamSecrets};
use serde_json::Value;

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The generator of `tests/data/upload_stream.json`: byte i = (i*31 + seed*7 + (i >> 8)) % 251.
pub fn vector_content(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| ((i * 31 + seed * 7 + (i >> 8)) % 251) as u8).collect()
}

pub struct Vector {
    pub name: String,
    pub pairing: SocketPairingResponse,
    pub content: Vec<u8>,
    pub content_sha256: String,
    pub wire_len: usize,
    pub wire_sha256: String,
    pub wire_hex: Option<String>,
    pub checksum: String,
}

pub fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(data_path("upload_stream.json")).expect("vectors file");
    let doc: Value = serde_json::from_str(&text).expect("vectors JSON");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("field {k}")).to_owned();
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let gen = &case["content_generator"];
            Vector {
                name: s(case, "name"),
                pairing: SocketPairingResponse {
                    pairing_id: s(case, "name"),
                    host: "127.0.0.1".into(),
                    port: 1,
                    encryption_key: s(case, "encryption_key"),
                    nonce: s(case, "nonce"),
                    authentication_header: s(case, "authentication_header"),
                },
                content: vector_content(gen["len"].as_u64().unwrap() as usize, gen["seed"].as_u64().unwrap()),
                content_sha256: s(case, "content_sha256"),
                wire_len: case["wire_len"].as_u64().unwrap() as usize,
                wire_sha256: s(case, "wire_sha256"),
                wire_hex: case["wire_hex"].as_str().map(str::to_owned),
                checksum: s(case, "checksum"),
            }
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A pairing response pointing at `port` on loopback with fresh secrets.
pub fn loopback_pairing(secrets: &StreamSecrets, port: u16) -> SocketPairingResponse {
    secrets.to_response("test-pairing", "127.0.0.1", port)
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for many MiB in debug builds.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A real `norman serve` process on a free loopback port, stopped (SIGTERM, then kill) on drop.
pub struct Serve {
    child: std::process::Child,
    pub base_url: String,
}

impl Serve {
    pub fn start(data_dir: &std::path::Path, extra: &[&str]) -> Serve {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_norman"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn norman serve");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first line");
        let base_url = line
            .trim()
            .strip_prefix("norman serve listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Serve { child, base_url }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.child.wait().expect("wait for norman serve")
    }

    /// SIGTERM; the exit status if the process ended within `limit`, and how long it took.
    pub fn stop_within(
        &mut self,
        limit: std::time::Duration,
    ) -> (Option<std::process::ExitStatus>, std::time::Duration) {
        let start = std::time::Instant::now();
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait for norman serve") {
                return (Some(status), start.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (None, start.elapsed())
    }

    pub fn config(&self) -> norman::AppConfig {
        norman::AppConfig {
            base_url: self.base_url.clone(),
            timeout: std::time::Duration::from_secs(10),
            ..norman::AppConfig::default()
        }
    }

    pub fn http(&self) -> norman::http::HttpClient {
        norman::http::HttpClient::new(&self.config()).expect("client")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local HTTP/1.1 server for link pulls on 127.0.0.1: `/file` is `content` with a Content-Length,
/// `/stream` the same without one (ended by closing), anything else 404. Returns its port and the
/// count of connections it accepted.
pub async fn link_server(content: Vec<u8>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let content = content.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = match () {
                    _ if head.starts_with(b"GET /file ") => {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            content.len()
                        )
                    }
                    _ if head.starts_with(b"GET /stream ") => {
                        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into()
                    }
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                };
                let mut reply = reply.into_bytes();
                if !reply.starts_with(b"HTTP/1.1 404") {
                    reply.extend_from_slice(&content);
                }
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (port, accepted)
}
