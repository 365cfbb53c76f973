//! `norman bson serve` / `norman bson send` as processes on 127.0.0.1, against each other, raw
//! sockets, and real py-bson peers (cli/tests/py/bson_peer.py, `bson==0.5.10` from the test venv).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

const NORMAN: &str = env!("CARGO_BIN_EXE_norman");

fn peer_script() -> String {
    format!("{}/tests/py/bson_peer.py", env!("CARGO_MANIFEST_DIR"))
}

/// The venv interpreter with py-bson, or None (test skipped) unless NORMAN_REQUIRE_PYTHON is set.
fn python() -> Option<String> {
    match std::env::var("NORMAN_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var_os("NORMAN_REQUIRE_PYTHON").is_some() => {
            panic!("NORMAN_REQUIRE_PYTHON is set but NORMAN_TEST_PYTHON is not: source scripts/py-venv.sh && py_venv")
        }
        _ => {
            eprintln!("skipped: NORMAN_TEST_PYTHON is unset (source scripts/py-venv.sh && py_venv)");
            None
        }
    }
}

/// A child process whose output lines arrive on channels; killed when dropped.
struct Proc {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Proc { child, stdout, stderr }
    }

    fn line(&self) -> String {
        self.stdout.recv_timeout(Duration::from_secs(20)).expect("a stdout line in time")
    }

    fn err_line(&self) -> String {
        self.stderr.recv_timeout(Duration::from_secs(20)).expect("a stderr line in time")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// `norman bson serve` on a free loopback port, and its address.
fn serve(extra: &[&str]) -> (Proc, String) {
    let server =
        Proc::spawn(Command::new(NORMAN).args(["bson", "serve", "--listen", "127.0.0.1:0"]).args(extra));
    let first = server.line();
    let addr =
        first.strip_prefix("norman bson listening on ").unwrap_or_else(|| panic!("first line: {first}"));
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{first}");
    let addr = addr.to_string();
    (server, addr)
}

fn py_echo_server(python: &str) -> (Proc, u16) {
    let server = Proc::spawn(Command::new(python).arg(peer_script()).arg("echo-server"));
    let first = server.line();
    let port = first.strip_prefix("port ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{first}"));
    (server, port)
}

fn norman(args: &[&str]) -> Output {
    Command::new(NORMAN).args(args).stdin(Stdio::null()).output().expect("run norman")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn py_bson_client_against_serve_echo() {
    let Some(python) = python() else { return };
    let (server, addr) = serve(&["--echo", "--py-bson"]);
    let port = addr.rsplit(':').next().unwrap();
    let out = Command::new(&python).arg(peer_script()).args(["client", port]).output().expect("python");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "py-bson client failed:\n{stdout}\n{}", text(&out.stderr));
    for case in ["int32", "uint64", "uuid", "datetime", "big_binary", "two-in-one", "trickle", "clean-close"]
    {
        assert!(stdout.contains(&format!("ok {case}\n")), "{case} missing:\n{stdout}");
    }
    // What the server printed, in order: py-bson's types as relaxed Extended JSON.
    let printed: Vec<String> = (0..17).map(|_| server.line()).collect();
    assert_eq!(printed[0], r#"{"v":-2147483648,"w":2147483647}"#);
    assert_eq!(printed[1], r#"{"v":2147483648,"w":-9223372036854775808}"#);
    assert_eq!(printed[2], r#"{"v":9223372036854775813,"w":18446744073709551615}"#);
    assert_eq!(printed[3], r#"{"v":1.5,"w":-0.0,"x":1e+300}"#);
    assert_eq!(printed[4], r#"{"v":"héllo wörld ✓","w":"","x":"nul\u0000inside"}"#);
    assert_eq!(printed[5], r#"{"v":{"$binary":{"base64":"AAH+/w==","subType":"00"}}}"#);
    assert_eq!(printed[6], r#"{"v":{"$binary":{"base64":"EjRWeBI0VngSNFZ4EjRWeA==","subType":"04"}}}"#);
    assert_eq!(printed[7], r#"{"v":{"$date":"2024-02-29T12:34:56.789Z"}}"#);
    assert_eq!(printed[8], r#"{"v":null}"#);
    assert_eq!(printed[9], r#"{"t":true,"f":false}"#);
    assert_eq!(printed[10], r#"{"v":{"a":1,"b":{"c":"d"}}}"#);
    assert_eq!(printed[11], r#"{"v":[1,"two",3.0,[4],{"five":5},null]}"#);
    assert!(printed[12].starts_with(r#"{"z":1,"a":[9223372036854775813,{"u":"#), "{}", printed[12]);
    assert!(printed[13].starts_with(r#"{"blob":{"$binary":{"base64":"AAECAwQF"#));
    assert!(printed[13].len() > 4 << 20, "3 MiB of base64");
    assert_eq!(
        printed[14..],
        [r#"{"first":1}"#, r#"{"second":[2]}"#, r#"{"trickle":"one byte at a time","n":42}"#]
    );
    // A clean close is no error.
    assert!(server.stderr.recv_timeout(Duration::from_millis(200)).is_err());
}

/// Every type of py-bson's table, as `norman bson send --py-bson` writes it.
const ALL_TYPES: &str = concat!(
    r#"{"i32":-5,"i64":4294967296,"u64":9223372036854775813,"d":1.5,"s":"x✓","#,
    r#""bin":{"$binary":{"base64":"AAH+/w==","subType":"00"}},"#,
    r#""uuid":{"$binary":{"base64":"EjRWeBI0VngSNFZ4EjRWeA==","subType":"04"}},"#,
    r#""dt":{"$date":"2024-02-29T12:34:56.789Z"},"n":null,"doc":{"a":{"b":true}},"arr":[1,"two",[3]]}"#
);

#[test]
fn send_against_py_bson_echo_server() {
    let Some(python) = python() else { return };
    let (peer, port) = py_echo_server(&python);
    let addr = format!("127.0.0.1:{port}");
    let out = norman(&["bson", "send", &addr, "--py-bson", "--json", ALL_TYPES, "--receive", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // py-bson decoded each value as its own type and sent the document back unchanged.
    assert_eq!(text(&out.stdout), format!("{ALL_TYPES}\n"));
    let seen: serde_json::Value = serde_json::from_str(&peer.line()).unwrap();
    let fields: Vec<(String, serde_json::Value)> = seen[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
        .collect();
    let field = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.to_string()).unwrap();
    assert_eq!(
        fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(","),
        "i32,i64,u64,d,s,bin,uuid,dt,n,doc,arr"
    );
    assert_eq!(field("i32"), r#"["int","-5"]"#);
    assert_eq!(field("i64"), r#"["int","4294967296"]"#);
    assert_eq!(field("u64"), r#"["int","9223372036854775813"]"#);
    assert_eq!(field("d"), r#"["float","1.5"]"#);
    assert_eq!(field("s"), r#"["str","x✓"]"#);
    assert_eq!(field("bin"), r#"["bytes","0001feff"]"#);
    assert_eq!(field("uuid"), r#"["uuid","12345678-1234-5678-1234-567812345678"]"#);
    assert_eq!(field("dt"), r#"["datetime","2024-02-29T12:34:56.789000+00:00"]"#);
    assert_eq!(field("n"), r#"["none"]"#);
    assert_eq!(field("doc"), r#"["dict",[["a",["dict",[["b",["bool",true]]]]]]]"#);
    assert_eq!(field("arr"), r#"["list",[["int","1"],["str","two"],["list",[["int","3"]]]]]"#);
    assert_eq!(peer.line(), "closed", "norman closed cleanly, recvobj() returned None");

    // A 3 MiB binary, from a file.
    let blob: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 + (i >> 11)) as u8).collect();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &blob);
    let json = format!(r#"{{"blob":{{"$binary":{{"base64":"{b64}","subType":"00"}}}}}}"#);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    std::fs::write(&file, &json).unwrap();
    let out = norman(&[
        "bson",
        "send",
        &addr,
        "--py-bson",
        "--json-file",
        file.to_str().unwrap(),
        "--receive",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{json}\n"));
    let seen = peer.line();
    assert!(
        seen.starts_with(r#"["dict", [["blob", ["bytes", "00070e15"#) && seen.len() > 6 << 20,
        "{}",
        &seen[..80]
    );
}

#[test]
fn decimal128_is_misread_by_py_bson_and_refused_by_the_dialect() {
    let Some(python) = python() else { return };
    let (_peer, port) = py_echo_server(&python);
    let addr = format!("127.0.0.1:{port}");
    let doc = r#"{"i":5,"d":{"$numberDecimal":"1.5"},"e":"after"}"#;
    // Without the dialect the document goes out, and py-bson silently reuses the previous value.
    let out = norman(&["bson", "send", &addr, "--json", doc, "--receive", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(r#"{"i":5,"d":5,"":5,"#), "{}", text(&out.stdout));
    // With it, nothing is sent and the field is named.
    let out = norman(&["bson", "send", &addr, "--py-bson", "--json", doc, "--receive", "1"]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("field `d` holds a Decimal128 (0x13), which py-bson cannot decode"), "{err}");
}

#[test]
fn py_bson_dialect_refuses_each_trap_naming_the_field() {
    // Refused before connecting: nothing listens on the address.
    let traps = [
        (r#"{"a":{"$numberDecimal":"1"}}"#, "field `a` holds a Decimal128"),
        (
            r#"{"a":[{"r":{"$regularExpression":{"pattern":"x","options":""}}}]}"#,
            "field `a.0.r` holds a regular expression",
        ),
        (r#"{"o":{"$oid":"0123456789abcdef01234567"}}"#, "field `o` holds an ObjectId"),
        (r#"{"c":{"$code":"f()"}}"#, "field `c` holds JavaScript code"),
        (r#"{"s":{"$symbol":"x"}}"#, "field `s` holds a symbol"),
        (r#"{"k":{"$minKey":1}}"#, "field `k` holds MinKey"),
        (r#"{"k":{"$maxKey":1}}"#, "field `k` holds MaxKey"),
        (r#"{"u":{"$undefined":true}}"#, "field `u` holds undefined"),
        (
            r#"{"b":{"$binary":{"base64":"AAAA","subType":"04"}}}"#,
            "field `b` holds a UUID binary (subtype 4) of 3 bytes",
        ),
        (
            r#"{"b":{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAA==","subType":"03"}}}"#,
            "legacy UUID binary (subtype 3)",
        ),
        (r#"{"b":{"$binary":{"base64":"AAAA","subType":"80"}}}"#, "binary of subtype 0x80"),
        (r#"{"t":{"$date":{"$numberLong":"253402300800000"}}}"#, "field `t` holds a datetime"),
        (r#"{"x":{"y":{"$timestamp":{"t":1,"i":2}}}}"#, "field `x.y`: a $timestamp is 0x11"),
    ];
    for (doc, expected) in traps {
        let out = norman(&["bson", "send", "127.0.0.1:9", "--py-bson", "--json", doc]);
        let err = text(&out.stderr);
        assert!(!out.status.success() && err.contains(expected) && err.lines().count() == 1, "{doc}: {err}");
    }
}

fn raw_connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
}

/// Reads until the server closes the connection (a reset counts as closed).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_)) && stream.read(&mut buf).map(|n| n == 0).unwrap_or(true)
}

#[test]
fn serve_reports_truncated_and_oversize_frames_and_goes_on() {
    let (server, addr) = serve(&["--echo", "--max-bytes", "1024"]);
    let hello = b"\x16\x00\x00\x00\x02hello\x00\x06\x00\x00\x00world\x00\x00";

    // Truncated: 100 bytes announced, 10 sent, then the write side closed.
    let mut s = raw_connect(&addr);
    s.write_all(&[100, 0, 0, 0, 2, b'a', 0, 1, 0, 0]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let err = server.err_line();
    assert!(err.contains("stream ended early while reading a BSON document: 10 of 100 bytes"), "{err}");
    assert!(closed_by_server(&mut s));

    // Above --max-bytes, zero or negative: refused from the 4 bytes of length, connection closed.
    for (length, shown) in [(1025i32, "1025"), (0x7fff_ffff, "2147483647"), (3, "3"), (-1, "-1")] {
        let mut s = raw_connect(&addr);
        s.write_all(&length.to_le_bytes()).unwrap();
        let err = server.err_line();
        assert!(err.contains(&format!("BSON frame length {shown} is outside the allowed 5..=1024")), "{err}");
        assert!(closed_by_server(&mut s), "{length}");
    }

    // A clean close between documents is no error; the server still echoes.
    let mut s = raw_connect(&addr);
    s.write_all(hello).unwrap();
    let mut echo = [0u8; 22];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, hello);
    drop(s);
    assert_eq!(server.line(), r#"{"hello":"world"}"#);
    assert!(server.stderr.recv_timeout(Duration::from_millis(200)).is_err());

    // A document of exactly 1024 bytes (4 + 1 + 2 + 4 + 1011 + 1 + 1) is accepted: the limit counts the whole frame.
    let doc = format!(r#"{{"s":"{}"}}"#, "x".repeat(1024 - 13));
    let out = norman(&["bson", "send", &addr, "--json", &doc, "--receive", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{doc}\n"));
}

#[test]
fn send_fails_with_one_clear_line() {
    let (server, addr) = serve(&["--max-bytes", "64"]);
    let check = |args: &[&str], expected: &str| {
        let out = norman(args);
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    };
    // No echo: the wait for an answer times out.
    check(
        &["bson", "send", &addr, "--json", "{}", "--receive", "1", "--timeout-ms", "300"],
        "timed out after 300 ms waiting for document 1 of 1",
    );
    assert_eq!(server.line(), "{}");
    // Too large for the server: it closes the connection before answering.
    let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(100));
    check(
        &["bson", "send", &addr, "--json", &big, "--receive", "1"],
        "closed the connection after 0 of 1 documents",
    );
    check(&["bson", "send", &addr, "--json", "[1]"], "a BSON document must be a JSON object");
    check(&["bson", "send", &addr, "--json", "{"], "Extended JSON");
    check(&["bson", "send", &addr, "--json-file", "/nonexistent/doc.json"], "/nonexistent/doc.json");
    drop(server);
    check(&["bson", "send", &addr, "--json", "{}"], "cannot connect to");
    check(
        &["bson", "serve", "--listen", "127.0.0.1:0", "--max-bytes", "4"],
        "a document takes at least 5 bytes",
    );
}

/// The benchmark runs both sides on tiny counts and prints a rate and a ratio for each size.
#[test]
fn bench_prints_rates_next_to_py_bson() {
    let Some(python) = python() else { return };
    let out = norman(&["bson", "bench", "--python", &python, "--count-1k", "2000", "--count-1m", "10"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for size in ["1 KiB", "1 MiB"] {
        let line =
            stdout.lines().find(|l| l.trim_start().starts_with(size)).unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.contains("libnorman") && line.contains("py-bson") && line.contains("ratio"), "{line}");
    }
}
