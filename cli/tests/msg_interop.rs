//! `norman msg` against the real netaio 0.0.9 (from the test venv, see msg_support::python): a
//! netaio client against `norman msg serve`, `norman msg request` against a netaio server, both with
//! netaio's HMAC + stream cipher as the outer layers and per-handler inner layers with their own
//! field names; pub/sub; a wrong secret; malformed frames; and UDP discovery and echo between a
//! netaio node and ours inside a private network namespace (multicast never leaves it).

mod msg_support;

use std::time::Duration;

use msg_support::*;

/// Outer HMAC + cipher and inner HMAC (`hmac2`) + cipher (`iv2`), the same on both sides.
const LAYERS: [&str; 8] = [
    "--secret",
    "outer secret",
    "--cipher-key",
    "outer key",
    "--inner-secret",
    "inner secret",
    "--inner-cipher-key",
    "inner key",
];

/// What the scenarios print: the same lines netaio's own server gives netaio's client.
const CRUD: [&str; 8] = [
    "OK uri=a content=",
    "RESPOND_URI uri=a content=one",
    "OK uri=a content=",
    "RESPOND_URI uri=a content=two",
    "RESPOND_URI uri=echo content=base64:AAFiaW5hcnn/",
    "OK uri=a content=",
    "NOT_FOUND uri=a content=not found",
    "OK uri=news content=",
];
const PUBSUB: [&str; 13] = [
    "CONFIRM_SUBSCRIBE uri=topic content=",
    "OK uri=topic content=",
    "OK uri=topic content=",
    "OK uri=topic content=",
    "OK uri=topic content=",
    "OK uri=other content=",
    "NOTIFY_URI uri=topic content=v1",
    "NOTIFY_URI uri=topic content=v2",
    "NOTIFY_URI uri=topic content=flash",
    "NOTIFY_URI uri=topic content=",
    "CONFIRM_UNSUBSCRIBE uri=topic content=",
    "OK uri=topic content=",
    "after unsubscribe: 0 notifications",
];

fn scenario(python: &std::path::PathBuf, port: u16, name: &str, layers: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut args = vec!["client", &port, name];
    args.extend_from_slice(layers);
    let out = run_python(python, &args, Duration::from_secs(60));
    assert!(out.status.success(), "netaio client {name}: {:?}\n{}", stdout_lines(&out), stderr_of(&out));
    stdout_lines(&out)
}

/// The reference: netaio's client against netaio's server (the Python peer), so that a change of
/// the peer script cannot make the expectations below drift from what netaio really does.
#[test]
fn reference_netaio_against_itself() {
    let Some(python) = python("reference_netaio_against_itself") else { return };
    let mut args = vec!["server", "0"];
    args.extend_from_slice(&LAYERS);
    let server = PyPeer::start(&python, &args);
    assert_eq!(scenario(&python, server.port, "crud", &LAYERS), CRUD);
    assert_eq!(scenario(&python, server.port, "pubsub", &LAYERS), PUBSUB);
}

#[test]
fn netaio_client_against_norman_msg_serve() {
    let Some(python) = python("netaio_client_against_norman_msg_serve") else { return };
    let mut serve = MsgServe::start(&LAYERS);
    assert_eq!(scenario(&python, serve.port(), "crud", &LAYERS), CRUD);
    assert_eq!(scenario(&python, serve.port(), "pubsub", &LAYERS), PUBSUB);
    // Outer layers only, against a server that also has inner ones: its handlers refuse.
    let wrong = scenario(
        &python,
        serve.port(),
        "wrong-secret",
        &["--secret", "not the secret", "--cipher-key", "outer key"],
    );
    assert_eq!(wrong, ["AUTH_ERROR uri=ERROR content=HMAC auth failed"]);
    assert!(serve.proc.terminate().success(), "stderr: {}", serve.proc.stderr());
}

#[test]
fn netaio_client_against_norman_msg_serve_outer_layers_only() {
    let Some(python) = python("netaio_client_against_norman_msg_serve_outer_layers_only") else { return };
    let outer = &LAYERS[..4];
    let serve = MsgServe::start(outer);
    assert_eq!(scenario(&python, serve.port(), "crud", outer), CRUD);
    // A client with the wrong secret gets AUTH_ERROR in the clear, and the server keeps serving.
    let wrong =
        scenario(&python, serve.port(), "wrong-secret", &["--secret", "nope", "--cipher-key", "outer key"]);
    assert_eq!(wrong, ["AUTH_ERROR uri=ERROR content=HMAC auth failed"]);
    assert_eq!(scenario(&python, serve.port(), "crud", outer), CRUD, "still serving after the bad client");
}

#[test]
fn norman_msg_request_against_netaio_server() {
    let Some(python) = python("norman_msg_request_against_netaio_server") else { return };
    let mut args = vec!["server", "0"];
    args.extend_from_slice(&LAYERS);
    let server = PyPeer::start(&python, &args);
    cli_crud_and_pubsub(server.port, &LAYERS);
}

#[test]
fn norman_msg_request_with_a_wrong_secret_gets_auth_error() {
    let Some(python) = python("norman_msg_request_with_a_wrong_secret_gets_auth_error") else { return };
    let server = PyPeer::start(&python, &["server", "0", "--secret", "right", "--cipher-key", "k"]);
    let out = request(
        server.port,
        &["--secret", "wrong", "--cipher-key", "k"],
        &["--type", "request", "--uri", "echo"],
    );
    assert_eq!(stdout_lines(&out), ["AUTH_ERROR uri=ERROR content=HMAC auth failed"]);
    assert_clean_failure(&out, "AUTH_ERROR");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn norman_msg_request_survives_malformed_frames() {
    let Some(python) = python("norman_msg_request_survives_malformed_frames") else { return };
    for kind in ["checksum", "type", "packify", "oversize", "truncated"] {
        let server = PyPeer::start(&python, &["server", "0", "--garbage", kind]);
        let started = std::time::Instant::now();
        let out = msg_request(
            &format!("127.0.0.1:{}", server.port),
            &["--type", "request", "--uri", "echo", "--content", "hello", "--timeout-ms", "3000"],
        );
        assert!(!out.status.success(), "{kind}: {:?}", stdout_lines(&out));
        assert!(
            stdout_lines(&out).is_empty(),
            "{kind}: nothing valid was received: {:?}",
            stdout_lines(&out)
        );
        let err = stderr_of(&out);
        assert!(!err.contains("panicked"), "{kind}: {err}");
        assert_eq!(err.lines().count(), 1, "{kind}: one line on stderr: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}: took {:?}", started.elapsed());
    }
}

/// UDP: a netaio node and `norman msg node` discover each other and the netaio node gets its echo
/// answered, inside a private network namespace (netaio binds 0.0.0.0 and multicasts with the
/// kernel's default interface, which outside would be the network card).
#[test]
fn udp_discovery_and_echo_with_a_netaio_node_in_a_namespace() {
    let Some(python) = python("udp_discovery_and_echo_with_a_netaio_node_in_a_namespace") else { return };
    if !netns_available("udp_discovery_and_echo_with_a_netaio_node_in_a_namespace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Both on multicast port 9001: netaio's socket (bound 0.0.0.0:9001, SO_REUSEADDR set by the
    // peer script) and ours, whose group socket binds 224.0.0.1:9001 beside its unicast 9002.
    let script = r#"
        "$PY" "$PEER" node 9001 pynode --reuse-addr --every 0.2 --duration 2.5 --echo-to-peers \
            --secret s --cipher-key k > "$OUT/py.out" 2> "$OUT/py.err" &
        "$NORMAN" msg node --listen 127.0.0.1:9002 --id rsnode --interface 127.0.0.1 --multicast-port 9001 \
            --every-ms 200 --peer-timeout-ms 1500 --duration-ms 4500 --secret s --cipher-key k \
            > "$OUT/rs.out" 2> "$OUT/rs.err"
        echo "norman exit $?"
        wait
    "#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-n", "sh", "-c", &format!("{NETNS_SETUP} || exit 97\n{script}")])
        .env("NORMAN", env!("CARGO_BIN_EXE_norman"))
        .env("PY", &python)
        .env("PEER", peer_script())
        .env("OUT", dir.path());
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let (py, rs) = (read("py.out"), read("rs.out"));
    let context =
        format!("netaio: {py}{}\nours: {rs}{}\nsh: {}", read("py.err"), read("rs.err"), stderr_of(&out));
    assert!(stdout_lines(&out).contains(&"norman exit 0".to_owned()), "{context}");
    assert!(py.lines().any(|l| l == "peer rsnode at 127.0.0.1:9002"), "{context}");
    assert!(py.lines().any(|l| l == "echo RESPOND_URI uri=echo content=ping rsnode"), "{context}");
    let rs_lines: Vec<&str> = rs.lines().collect();
    let found = rs_lines.iter().position(|l| *l == "peer pynode at 127.0.0.1:9001");
    let gone = rs_lines.iter().position(|l| *l == "gone pynode");
    assert!(found.is_some() && gone.is_some() && found < gone, "{context}");
}
