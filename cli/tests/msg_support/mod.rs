//! Helpers of the `norman msg` tests: processes of our own (`norman msg serve`, `request`, `node`),
//! netaio peers from the test venv (cli/tests/py/netaio_peer.py), and private network namespaces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn norman() -> Command {
    Command::new(env!("CARGO_BIN_EXE_norman"))
}

pub fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/netaio_peer.py")
}

/// The venv interpreter with netaio 0.0.9 (NORMAN_TEST_PYTHON, exported by scripts/py-venv.sh).
///
/// Unset: the test is skipped with a message, unless NORMAN_REQUIRE_PYTHON is set (as
/// scripts/test-all.sh, i.e. CI, does), where it fails. A plain `cargo test` on a machine without
/// the venv thus still runs everything else, while CI can never pass by skipping interop.
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("NORMAN_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("NORMAN_REQUIRE_PYTHON").is_some() => panic!(
            "{test}: NORMAN_TEST_PYTHON is unset but NORMAN_REQUIRE_PYTHON is set: run the tests \
             through scripts/test-all.sh, or `source scripts/py-venv.sh && py_venv` first"
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: NORMAN_TEST_PYTHON is unset (run through scripts/test-all.sh, or \
                 `source scripts/py-venv.sh && py_venv`, to test against netaio 0.0.9)"
            );
            None
        }
    }
}

/// A child process whose stdout lines arrive on a channel (read by a thread, so it never blocks
/// on a full pipe) and whose stderr is collected; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc { child, lines, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next stdout line, or a panic that shows stderr after `timeout`.
    pub fn line(&self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(e) => panic!("no stdout line within {timeout:?} ({e}); stderr: {}", self.stderr()),
        }
    }

    pub fn try_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `want` (returned with all lines before it) or `timeout` passes.
    pub fn lines_until(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> (Vec<String>, bool) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = want(&line);
                    seen.push(line);
                    if hit {
                        return (seen, true);
                    }
                }
                Err(_) => break,
            }
        }
        (seen, false)
    }

    /// Every remaining stdout line (the process must end by itself within `timeout`).
    pub fn rest(&mut self, timeout: Duration) -> (Vec<String>, std::process::ExitStatus) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not end within {timeout:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
        (lines, status)
    }

    /// SIGTERM, then the exit status (killed after 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within 10 s of SIGTERM; stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `norman msg serve` on a free loopback port; `addr` is what its first line announced.
pub struct MsgServe {
    pub proc: Proc,
    pub addr: String,
}

impl MsgServe {
    pub fn start(extra: &[&str]) -> MsgServe {
        let mut cmd = norman();
        cmd.args(["msg", "serve", "--listen", "127.0.0.1:0"]).args(extra);
        let proc = Proc::spawn(cmd);
        let line = proc.line(Duration::from_secs(30));
        let addr = line
            .strip_prefix("norman msg listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        MsgServe { proc, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
    }
}

/// A netaio peer from the venv: `netaio_peer.py MODE ARGS...`, past its `listening PORT` line
/// for the modes that print one.
pub struct PyPeer {
    pub proc: Proc,
    pub port: u16,
}

impl PyPeer {
    pub fn start(python: &PathBuf, args: &[&str]) -> PyPeer {
        let mut cmd = Command::new(python);
        cmd.arg(peer_script()).args(args);
        let proc = Proc::spawn(cmd);
        let line = proc.line(Duration::from_secs(30));
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; stderr: {}", proc.stderr()));
        PyPeer { proc, port }
    }
}

/// Runs a netaio peer to completion (for the client scenarios) and returns its output.
pub fn run_python(python: &PathBuf, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(python);
    cmd.arg(peer_script()).args(args);
    run_with_timeout(cmd, timeout)
}

pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(timeout).is_err() {
            // SAFETY: our own child, still unreaped (the waiter below has not returned).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = tx.send(());
    out
}

/// `norman msg request ADDR ARGS...`, run to completion.
pub fn msg_request(addr: &str, args: &[&str]) -> Output {
    let mut cmd = norman();
    cmd.args(["msg", "request", addr]).args(args);
    run_with_timeout(cmd, Duration::from_secs(30))
}

pub fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed command: non-zero exit, no panic, and stderr mentions `mentions`.
pub fn assert_clean_failure(out: &Output, mentions: &str) {
    let err = stderr_of(out);
    assert!(!out.status.success(), "expected failure; stdout: {:?} stderr: {err}", stdout_lines(out));
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(err.contains(mentions), "stderr should mention {mentions:?}: {err}");
}

/// Setup of a private network namespace in which multicast stays on lo (WIRE.md §8).
pub const NETNS_SETUP: &str =
    "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo src 127.0.0.1";

/// Whether this process may create a private network namespace (`unshare -n`, as root) with lo set
/// up for multicast. Where it may not, the tests that need one are skipped with a message.
pub fn netns_available(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args(["-n", "sh", "-c", NETNS_SETUP])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED {test}: cannot make a private network namespace (unshare -n needs root and ip)");
    }
    ok
}

pub fn request(port: u16, layers: &[&str], args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend_from_slice(layers);
    all.extend_from_slice(&["--timeout-ms", "10000"]);
    msg_request(&format!("127.0.0.1:{port}"), &all)
}

pub fn assert_reply(out: &std::process::Output, lines: &[&str]) {
    assert!(out.status.success(), "stdout: {:?} stderr: {}", stdout_lines(out), stderr_of(out));
    assert_eq!(stdout_lines(out), lines, "stderr: {}", stderr_of(out));
}

/// `norman msg request` through create, request, update, echo of binary content from a file,
/// delete, a missing uri (NOT_FOUND, exit 1), publish, and a subscriber (`--count`) that sees the
/// notifications of its uri only, against the broker at 127.0.0.1:`port` (ours or netaio's).
pub fn cli_crud_and_pubsub(port: u16, layers: &[&str]) {
    let l = layers;

    assert_reply(
        &request(port, l, &["--type", "create", "--uri", "a", "--content", "one"]),
        &["OK uri=a content="],
    );
    assert_reply(&request(port, l, &["--type", "request", "--uri", "a"]), &["RESPOND_URI uri=a content=one"]);
    assert_reply(
        &request(port, l, &["--type", "update", "--uri", "a", "--content", "two"]),
        &["OK uri=a content="],
    );
    assert_reply(&request(port, l, &["--type", "request", "--uri", "a"]), &["RESPOND_URI uri=a content=two"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("content.bin");
    std::fs::write(&file, b"\x00\x01binary\xff").unwrap();
    assert_reply(
        &request(port, l, &["--type", "request", "--uri", "echo", "--content-file", file.to_str().unwrap()]),
        &["RESPOND_URI uri=echo content=base64:AAFiaW5hcnn/"],
    );
    assert_reply(&request(port, l, &["--type", "delete", "--uri", "a"]), &["OK uri=a content="]);
    let missing = request(port, l, &["--type", "request", "--uri", "a"]);
    assert_eq!(stdout_lines(&missing), ["NOT_FOUND uri=a content=not found"]);
    assert_clean_failure(&missing, "NOT_FOUND");
    assert_eq!(missing.status.code(), Some(1));
    assert_reply(
        &request(port, l, &["--type", "publish", "--uri", "news", "--content", "x"]),
        &["OK uri=news content="],
    );

    // A subscriber printing notifications until --count of them arrived.
    let mut cmd = norman();
    cmd.args(["msg", "request", &format!("127.0.0.1:{port}"), "--type", "subscribe", "--uri", "topic"])
        .args(["--count", "3", "--timeout-ms", "20000"])
        .args(l);
    let mut sub = Proc::spawn(cmd);
    assert_eq!(sub.line(Duration::from_secs(20)), "CONFIRM_SUBSCRIBE uri=topic content=");
    assert_reply(
        &request(port, l, &["--type", "create", "--uri", "topic", "--content", "v1"]),
        &["OK uri=topic content="],
    );
    assert_reply(
        &request(port, l, &["--type", "publish", "--uri", "other", "--content", "no"]),
        &["OK uri=other content="],
    );
    assert_reply(
        &request(port, l, &["--type", "publish", "--uri", "topic", "--content", "p"]),
        &["OK uri=topic content="],
    );
    assert_reply(&request(port, l, &["--type", "delete", "--uri", "topic"]), &["OK uri=topic content="]);
    let (rest, status) = sub.rest(Duration::from_secs(20));
    assert!(status.success(), "subscriber: {rest:?} {}", sub.stderr());
    assert_eq!(
        rest,
        [
            "NOTIFY_URI uri=topic content=v1",
            "NOTIFY_URI uri=topic content=p",
            "NOTIFY_URI uri=topic content="
        ]
    );

    let unsub = request(port, l, &["--type", "unsubscribe", "--uri", "topic"]);
    assert_reply(&unsub, &["CONFIRM_UNSUBSCRIBE uri=topic content="]);
}
