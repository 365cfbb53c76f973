//! `norman msg bench`: figures, not pass/fail. In one run: sequential request/response with 1 KiB
//! contents over loopback (requests/s, p50, p99) with no layers, netaio's HMAC + cipher and the
//! AEAD layer; pipelined one-way messages per second on one connection; netaio's own client and
//! server on the same workload (from the test venv) with the ratios; and the resident memory of
//! `norman msg serve` with 1,000 clients connected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{print_line, CliResult};

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
