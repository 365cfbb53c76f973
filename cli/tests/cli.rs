//! The `norman` program exercised as a process: checksum, send, receive, demo, and bad input.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::*;
use norman::socket::StreamSecrets;
use norman::Checksum;
use norman_cli::receiver::generate_secrets;

fn norman() -> Command {
    Command::new(env!("CARGO_BIN_EXE_norman"))
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed command says one `norman: ...` line on stderr, exits non-zero, and never panics.
fn assert_clean_failure(out: &Output, mentions: &str) {
    let err = stderr_of(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(err.contains(mentions), "stderr should mention {mentions:?}: {err}");
}

fn write_pairing(path: &Path, secrets: &StreamSecrets, port: u16) {
    std::fs::write(path, serde_json::to_vec(&loopback_pairing(secrets, port)).unwrap()).unwrap();
}

/// Starts `norman receive` on a free port and returns it with the port it announced.
fn spawn_receiver(pairing: &Path, out: &Path, extra: &[&str]) -> (Child, u16) {
    let mut child = norman()
        .args(["receive", "--listen", "127.0.0.1:0", "--timeout", "20", "--pairing"])
        .arg(pairing)
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"));
    (child, port)
}

#[test]
fn checksum_prints_python_compatible_digests() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    let abc = dir.path().join("abc.txt");
    let big = dir.path().join("big.bin");
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(&abc, b"abc").unwrap();
    let content = vector_content(1_048_589, 7);
    std::fs::write(&big, &content).unwrap();
    let out = norman().arg("checksum").args([&empty, &abc, &big]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let expected = format!(
        "2d06800538d394c2  {}\n78af5f94892f3950  {}\nbec8ba9eabf6d875  {}\n",
        empty.display(),
        abc.display(),
        big.display()
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn checksum_reports_unreadable_files_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let abc = dir.path().join("abc");
    std::fs::write(&abc, b"abc").unwrap();
    let missing = dir.path().join("missing");
    let out = norman().arg("checksum").arg(&missing).arg(&abc).output().unwrap();
    assert_clean_failure(&out, "missing");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("78af5f94892f3950  {}\n", abc.display()));
    let out = norman().arg("checksum").arg(dir.path()).output().unwrap();
    assert_clean_failure(&out, &dir.path().display().to_string());
}

#[test]
fn send_to_receive_round_trip_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = generate_secrets(32);
    let recv_pairing = dir.path().join("recv.json");
    write_pairing(&recv_pairing, &secrets, 1);
    let content = random_bytes(5 * 1024 * 1024 + 3, 11);
    let src = dir.path().join("model.bin");
    std::fs::write(&src, &content).unwrap();
    let dest = dir.path().join("received.bin");
    let size = content.len().to_string();
    let (receiver, port) = spawn_receiver(&recv_pairing, &dest, &["--size", &size]);

    let send_pairing = dir.path().join("send.json");
    write_pairing(&send_pairing, &secrets, port);
    let sent = norman().arg("send").arg("--pairing").arg(&send_pairing).arg(&src).output().unwrap();
    assert!(sent.status.success(), "{}", stderr_of(&sent));
    let received = receiver.wait_with_output().unwrap();
    assert!(received.status.success(), "{}", stderr_of(&received));

    let sum = Checksum::of(&content);
    assert_eq!(String::from_utf8(sent.stdout).unwrap(), format!("{sum}  {}\n", src.display()));
    assert_eq!(String::from_utf8(received.stdout).unwrap(), format!("{} {sum}\n", content.len()));
    assert!(std::fs::read(&dest).unwrap() == content);
}

#[test]
fn receive_rejects_a_wrong_header_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = generate_secrets(16);
    let recv_pairing = dir.path().join("recv.json");
    write_pairing(&recv_pairing, &secrets, 1);
    let dest = dir.path().join("out.bin");
    let (receiver, port) = spawn_receiver(&recv_pairing, &dest, &[]);
    let mut forged = secrets.clone();
    forged.header = vec![0u8; 16].into();
    let send_pairing = dir.path().join("send.json");
    write_pairing(&send_pairing, &forged, port);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(100_000, 1)).unwrap();
    let _ = norman().arg("send").arg("--pairing").arg(&send_pairing).arg(&src).output().unwrap();
    let out = receiver.wait_with_output().unwrap();
    assert_clean_failure(&out, "authentication header mismatch");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 3, "only the two pairings and the source remain: {left:?}");
    assert!(!dest.exists());
}

#[test]
fn send_reports_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, b"data").unwrap();
    let secrets = generate_secrets(16);

    let missing = dir.path().join("nope.json");
    let out = norman().arg("send").arg("--pairing").arg(&missing).arg(&src).output().unwrap();
    assert_clean_failure(&out, "nope.json");

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, b"{not json").unwrap();
    let out = norman().arg("send").arg("--pairing").arg(&garbage).arg(&src).output().unwrap();
    assert_clean_failure(&out, "pairing JSON");

    let bad_nonce = dir.path().join("bad-nonce.json");
    let mut pairing = loopback_pairing(&secrets, 9);
    pairing.nonce = b64(&[1u8; 8]);
    std::fs::write(&bad_nonce, serde_json::to_vec(&pairing).unwrap()).unwrap();
    let out = norman().arg("send").arg("--pairing").arg(&bad_nonce).arg(&src).output().unwrap();
    assert_clean_failure(&out, "`nonce` must decode to 12 bytes, got 8");
    assert!(!stderr_of(&out).contains(&pairing.encryption_key), "no secret in errors");

    let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = dir.path().join("dead.json");
    write_pairing(&dead, &secrets, dead_port);
    let out = norman().arg("send").arg("--pairing").arg(&dead).arg(&src).output().unwrap();
    assert_clean_failure(&out, "could not connect");

    let out =
        norman().arg("send").arg("--pairing").arg(&dead).arg(dir.path().join("absent.bin")).output().unwrap();
    assert_clean_failure(&out, "absent.bin");

    let out = norman().args(["send", "--pairing"]).output().unwrap();
    assert!(!out.status.success());
    assert!(!stderr_of(&out).contains("panicked"));
}

#[test]
fn demo_verifies_a_round_trip() {
    let out = norman().args(["demo", "--size-mib", "8"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("verified: the file pulled back is byte-identical to the one pushed"),
        "{stdout}"
    );
}

#[test]
fn push_and_pull_through_a_real_backend() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (token, account_id, model) = runtime.block_on(async {
        let login = serve.http().authenticate().signup_default().await.unwrap();
        let token = login.access_token.unwrap().expose().clone();
        let account_id = login.account.unwrap().id;
        let http = serve.http().with_token(token.clone());
        let model = norman::objects::Model::new(&account_id, "cli-model", "v1").with_asset("File");
        let model = http.persist().create_models(&[model]).await.unwrap().into_iter().next().unwrap();
        (token, account_id, model)
    });
    let asset = format!("{account_id}/{}/{}", model.id, model.asset_id("File").unwrap());
    let content = random_bytes(2 * 1024 * 1024 + 1, 21);
    let src = dir.path().join("weights.bin");
    std::fs::write(&src, &content).unwrap();
    let with_env = |cmd: &mut Command| {
        cmd.env("NORMAN_BASE_URL", &serve.base_url).env("NORMAN_TOKEN", &token);
    };

    let mut push = norman();
    push.args(["push", "--asset", &asset]).arg(&src);
    with_env(&mut push);
    let out = push.output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let sum = Checksum::of(&content).to_hex();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{sum}  {}", src.display())));

    let dest = dir.path().join("pulled.bin");
    let mut pull = norman();
    pull.args(["pull", "--asset", &asset, "--out"]).arg(&dest);
    with_env(&mut pull);
    let out = pull.output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&sum));
    assert!(std::fs::read(&dest).unwrap() == content);

    let out = norman()
        .args(["push", "--asset", &asset])
        .arg(&src)
        .env_remove("NORMAN_TOKEN")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert_clean_failure(&out, "NORMAN_TOKEN");
    let mut bad = norman();
    bad.args(["pull", "--asset", "only/two", "--out"]).arg(&dest);
    with_env(&mut bad);
    assert_clean_failure(&bad.output().unwrap(), "--asset expects 3 non-empty parts");
    let mut missing = norman();
    missing
        .args(["pull", "--output", &format!("{account_id}/{}/no-inv/no-out", model.id), "--out"])
        .arg(dir.path().join("x"));
    with_env(&mut missing);
    assert_clean_failure(&missing.output().unwrap(), "404");
    assert!(!dir.path().join("x").exists());
}
