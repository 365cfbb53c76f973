//! `norman msg bench`: figures, not pass/fail. In one run: sequential request/response with 1 KiB
//! contents over loopback (requests/s, p50, p99) with no layers, netaio's HMAC + cipher and the
//! AEAD layer; pipelined one-way messages per second on one connection; netaio's own client and
//! server on the same workload (from the test venv) with the ratios; and the resident memory of
//! `norman msg serve` with 1,000 clients connected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use norman::msg::{Client, ClientConfig, Layers, Message, MessageType, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchArgs;
use crate::{print_line, CliResult};

/// A one-way message type of the pipelined run (an application type: nothing answers it).
const ONE_WAY: MessageType = MessageType(31);

pub fn run(args: BenchArgs) -> CliResult {
    super::raise_nofile_limit();
    let size = args.size;
    let dir = tempfile_dir()?;
    let key_file = dir.join("aead.key");
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    std::fs::write(&key_file, key).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let key_path = key_file.to_string_lossy().into_owned();
    let build = if cfg!(debug_assertions) { "debug build (figures need --release)" } else { "release build" };
    report(&format!("norman msg bench: {}, {build}, {size}-byte contents, loopback", cpu_model()))?;

    report(&format!("sequential request/response, one connection, {} requests each:", args.requests))?;
    let settings: [(&str, Vec<&str>); 3] = [
        ("no layers", vec![]),
        ("netaio HMAC + cipher", vec!["--secret", "bench secret", "--cipher-key", "bench key"]),
        ("AEAD", vec!["--aead-key-file", &key_path]),
    ];
    let mut ours = Vec::new();
    for (name, flags) in &settings {
        let stats = ours_sequential(flags, &key, args.requests, size)?;
        report(&format!("  norman  {name:<22} {}", stats.line()))?;
        ours.push(stats);
    }

    let python = args.python.clone().or_else(|| std::env::var_os("NORMAN_TEST_PYTHON").map(Into::into));
    match &python {
        None => report("  netaio  skipped: no --python and NORMAN_TEST_PYTHON unset (source scripts/py-venv.sh && py_venv)")?,
        Some(python) => {
            for (i, (name, flags)) in settings[..2].iter().enumerate() {
                match netaio_run(python, flags, args.netaio_requests, size) {
                    Ok(theirs) => report(&format!(
                        "  netaio  {name:<22} {}   norman/netaio {:.1}x",
                        theirs.line(),
                        ours[i].per_sec / theirs.per_sec.max(1e-9)
                    ))?,
                    Err(e) => report(&format!("  netaio  {name:<22} failed: {e}"))?,
                }
            }
        }
    }

    let (rate, n, wall) = pipelined(args.pipelined, size)?;
    report(&format!(
        "pipelined one-way messages, one connection: {rate:.0} msg/s ({n} messages of {size} bytes in {:.3} s)",
        wall.as_secs_f64()
    ))?;

    if args.clients > 0 {
        let (idle, loaded) = memory_with_clients(args.clients)?;
        report(&format!(
            "norman msg serve resident memory: {:.1} MiB idle, {:.1} MiB with {} clients connected",
            idle as f64 / 1024.0,
            loaded as f64 / 1024.0,
            args.clients
        ))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(std::process::ExitCode::SUCCESS)
}

fn tempfile_dir() -> CliResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("norman-msg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `norman msg serve` (this executable) on a free loopback port, killed on drop.
struct ServeProc {
    child: Reaped,
    addr: String,
}

fn spawn_serve(flags: &[&str]) -> CliResult<ServeProc> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut child = Reaped(
        Command::new(exe)
            .args(["msg", "serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting norman msg serve: {e}"))?,
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().ok_or("norman msg serve: no stdout")?)
        .read_line(&mut first)
        .map_err(|e| format!("norman msg serve: {e}"))?;
    let addr = first
        .trim()
        .strip_prefix("norman msg listening on ")
        .ok_or_else(|| format!("norman msg serve said {first:?}"))?
        .to_owned();
    Ok(ServeProc { child, addr })
}

fn client_layers(flags: &[&str], key: &[u8; 32]) -> Layers {
    match flags.first() {
        None => Layers::new(),
        Some(&"--aead-key-file") => Layers::aead(key),
        Some(_) => Layers::netaio(Some(flags[1].as_bytes()), Some(flags[3].as_bytes())),
    }
}

/// Our client against `norman msg serve` in another process: `n` sequential echo requests.
fn ours_sequential(flags: &[&str], key: &[u8; 32], n: u64, size: usize) -> CliResult<Stats> {
    let serve = spawn_serve(flags)?;
    let layers = client_layers(flags, key);
    let stats = crate::runtime()?.block_on(async {
        let client = Client::connect(&serve.addr, ClientConfig { layers, ..ClientConfig::default() })
            .await
            .map_err(|e| e.to_string())?;
        let payload = Bytes::from(pattern(size));
        let deadline = Duration::from_secs(10);
        let ask = |client: &Client| {
            let msg = Message::new(MessageType::REQUEST_URI, Bytes::from_static(b"echo"), payload.clone());
            let client = client.clone();
            async move { client.request_message(msg, &Layers::new(), deadline).await }
        };
        for _ in 0..(n / 10).clamp(10, 1000) {
            ask(&client).await.map_err(|e| format!("warm-up: {e}"))?;
        }
        let mut lat = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let reply = ask(&client).await.map_err(|e| e.to_string())?;
            lat.push(t0.elapsed().as_nanos() as u64);
            if reply.content != payload {
                return Err("the echo differs from the request".to_string());
            }
        }
        let wall = start.elapsed();
        client.close().await;
        Ok::<_, String>(Stats::from_latencies(&mut lat, wall))
    })?;
    drop(serve.child);
    Ok(stats)
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// `n` one-way messages sent back to back on one connection to a server (in this process, on
/// its own thread) that counts them; then one request, answered after all of them (a
/// connection's messages are handled in order): the rate is n over the time to that reply.
fn pipelined(n: u64, size: usize) -> CliResult<(f64, u64, Duration)> {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let seen = Arc::new(AtomicU64::new(0));
    let server = Server::new(ServerConfig::default());
    let counter = seen.clone();
    server.on(ONE_WAY, None, move |_m, _c| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { None }
    });
    let counter = seen.clone();
    server.on(MessageType::REQUEST_URI, Some(b"fence"), move |m, _c| {
        let count = counter.load(Ordering::Relaxed);
        async move {
            Some(Message::new(MessageType::RESPOND_URI, m.uri, Bytes::from(count.to_be_bytes().to_vec())))
        }
    });
    let addr = server_rt.block_on(server.listen("127.0.0.1:0")).map_err(|e| e.to_string())?;
    let result = crate::runtime()?.block_on(async {
        let client =
            Client::connect(&addr.to_string(), ClientConfig::default()).await.map_err(|e| e.to_string())?;
        let msg = Message::new(ONE_WAY, Bytes::from_static(b"bench"), Bytes::from(pattern(size)));
        let start = Instant::now();
        for _ in 0..n {
            client.send(msg.clone()).await.map_err(|e| e.to_string())?;
        }
        let fence = client
            .request(MessageType::REQUEST_URI, b"fence", b"", Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        let wall = start.elapsed();
        let counted = fence.content.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
        if counted != n {
            return Err(format!("the server counted {counted} of {n} messages"));
        }
        client.close().await;
        Ok::<_, String>((n as f64 / wall.as_secs_f64().max(1e-9), n, wall))
    });
    server_rt.block_on(server.shutdown());
    result
}

/// VmRSS of `norman msg serve` idle, then with `clients` connections that each made a request.
fn memory_with_clients(clients: usize) -> CliResult<(u64, u64)> {
    let serve = spawn_serve(&[])?;
    let pid = serve.child.0.id();
    std::thread::sleep(Duration::from_millis(200));
    let idle = rss_kib(pid).ok_or("reading the server's VmRSS")?;
    let addr = serve.addr.clone();
    let loaded = crate::runtime()?.block_on(async move {
        let request =
            Message::new(MessageType::REQUEST_URI, Bytes::from_static(b"echo"), Bytes::from(pattern(1024)))
                .encode()
                .map_err(|e| e.to_string())?;
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            let mut s =
                tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("connecting: {e}"))?;
            s.write_all(&request).await.map_err(|e| e.to_string())?;
            conns.push(s);
        }
        // Every reply read: the server has set up and used each connection.
        let mut buf = vec![0u8; request.len() + 64];
        for s in &mut conns {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.map_err(|e| format!("reading a reply: {e}"))?;
            let len = u16::from_be_bytes([head[1], head[2]]) as usize
                + u16::from_be_bytes([head[3], head[4]]) as usize;
            buf.resize(len, 0);
            s.read_exact(&mut buf).await.map_err(|e| format!("reading a reply: {e}"))?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss = rss_kib(pid).ok_or("reading the server's VmRSS")?;
        drop(conns);
        Ok::<_, String>(rss)
    })?;
    Ok((idle, loaded))
}

/// Throughput and latency of one sequential run.
#[derive(Clone, Copy)]
pub struct Stats {
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Stats {
    /// From per-request latencies (sorted here) and the wall time of the whole run.
    pub fn from_latencies(lat_ns: &mut [u64], wall: Duration) -> Stats {
        lat_ns.sort_unstable();
        let at = |q: usize| lat_ns.get((lat_ns.len() * q / 100).min(lat_ns.len().saturating_sub(1))).copied();
        Stats {
            per_sec: lat_ns.len() as f64 / wall.as_secs_f64().max(1e-9),
            p50_us: at(50).unwrap_or(0) as f64 / 1e3,
            p99_us: at(99).unwrap_or(0) as f64 / 1e3,
        }
    }

    pub fn line(&self) -> String {
        format!("{:>9.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us", self.per_sec, self.p50_us, self.p99_us)
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Resident memory of a process, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The netaio peer script beside the sources (tests and bench share it).
fn peer_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/netaio_peer.py")
}

/// A child killed on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// netaio's own server and client on the workload: `n` sequential 1 KiB echo requests.
pub fn netaio_run(python: &Path, layers: &[&str], n: u64, size: usize) -> CliResult<Stats> {
    let script = peer_script();
    if !script.exists() {
        return Err(format!("{} is missing (the bench runs from a source tree)", script.display()));
    }
    let mut server = Reaped(
        Command::new(python)
            .arg(&script)
            .args(["bench-server", "0"])
            .args(layers)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", python.display()))?,
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().ok_or("netaio server: no stdout")?)
        .read_line(&mut first)
        .map_err(|e| format!("netaio server: {e}"))?;
    let port = first
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("netaio server said {first:?}"))?
        .to_owned();
    let out = Command::new(python)
        .arg(&script)
        .args(["bench-client", &port, &n.to_string(), &size.to_string()])
        .args(layers)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("netaio client failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    match nums[..] {
        [per_sec, p50_us, p99_us] => Ok(Stats { per_sec, p50_us, p99_us }),
        _ => Err(format!("netaio client said {text:?}")),
    }
}

pub fn report(line: &str) -> CliResult<()> {
    print_line(line).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut lat: Vec<u64> = (1..=100).rev().map(|v| v * 1000).collect();
        let s = Stats::from_latencies(&mut lat, Duration::from_secs(2));
        assert_eq!(s.per_sec, 50.0);
        assert_eq!(s.p50_us, 51.0);
        assert_eq!(s.p99_us, 100.0);
        let s = Stats::from_latencies(&mut [], Duration::from_secs(1));
        assert_eq!((s.per_sec, s.p50_us), (0.0, 0.0));
    }
}
