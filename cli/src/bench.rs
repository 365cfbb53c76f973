//! `norman bench`: figures for the upload path, printed in one run. A benchmark, not a test: it
//! reports numbers and never fails on them.
//!
//! 1. ChaCha20 (ours, and the `chacha20` crate for comparison), raw xxh3-64 and the fused pass (hash + encrypt) on one core, in memory;
//! 2. a loopback upload: `norman receive` and `norman send` as two processes, so each side's peak
//!    memory (ru_maxrss from wait4) is its own.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use norman::socket::{StreamCipherState, StreamSecrets};
use norman_cli::receiver::generate_secrets;

use crate::{print_line, CliResult};

const MIB: usize = 1 << 20;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Size of the loopback upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Bytes pushed through each in-memory measurement, in MiB.
    #[arg(long, default_value_t = 2048)]
    cpu_mib: usize,
    /// Sender chunk sizes in bytes (NORMAN_CHUNK_SIZE) for the streamed runs; the file run uses the last.
    #[arg(long, value_delimiter = ',', default_values_t = [65536, 1048576])]
    chunk_sizes: Vec<usize>,
    /// Directory for the generated and received files (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the loopback upload.
    #[arg(long)]
    cpu_only: bool,
    /// Cipher threads of the parallel figures (0: what the machine has).
    #[arg(long, default_value_t = 0)]
    cipher_threads: usize,
}

pub fn run(args: BenchArgs) -> CliResult {
    let cpu = args.cpu_mib.max(1);
    let secrets = generate_secrets(32);
    let mut buf = vec![0x5au8; MIB];

    // Ours (what uploads run) and the `chacha20` crate's, each over 1 MiB calls.
    let (chacha, chacha_cpu) = rate_and_cpu(cpu, || {
        let mut state = StreamCipherState::new(&secrets);
        for _ in 0..cpu {
            let _ = state.apply_unhashed(&mut buf);
            black_box(&buf);
        }
    });
    let (crate_chacha, crate_chacha_cpu) = rate_and_cpu(cpu, || {
        let mut cipher = chacha20::ChaCha20::new(secrets.key.expose().into(), secrets.nonce.expose().into());
        for _ in 0..cpu {
            cipher.apply_keystream(&mut buf);
            black_box(&buf);
        }
    });
    let xxh3 = rate(cpu * 4, || {
        let mut hasher = norman::Hasher::new();
        for _ in 0..cpu * 4 {
            hasher.update(black_box(&buf));
        }
        black_box(hasher.digest());
    });
    let fused = rate(cpu, || {
        let mut state = StreamCipherState::new(&secrets);
        for _ in 0..cpu {
            let _ = state.seal_in_place(&mut buf);
        }
        black_box(state.checksum());
    });
    let src = vec![0xa5u8; MIB];
    let fused_copy = rate(cpu, || {
        let mut state = StreamCipherState::new(&secrets);
        for _ in 0..cpu {
            let _ = state.seal_into(&src, &mut buf);
        }
        black_box(state.checksum());
    });
    print_line(&format!(
        "chacha20 (one core) {chacha:8.0} MB/s, {chacha_cpu:8.0} MB/s per CPU-second, backend {}",
        norman::socket::chacha20_backend()
    ))?;
    print_line(&format!(
        "chacha20 crate      {crate_chacha:8.0} MB/s, {crate_chacha_cpu:8.0} MB/s per CPU-second, backend {}",
        norman::socket::chacha20_crate_backend()
    ))?;
    print_line(&format!("xxh3-64 (one core)           {xxh3:8.0} MB/s"))?;
    print_line(&format!("fused hash+encrypt in place  {fused:8.0} MB/s"))?;
    print_line(&format!("fused hash+encrypt+copy      {fused_copy:8.0} MB/s"))?;
    let threads = match args.cipher_threads {
        0 => norman::socket::available_threads(),
        n => n.min(norman::socket::MAX_CIPHER_THREADS),
    };
    // Every segment handed to the pool (min job 0) against the default threshold: where the
    // hand-off stops paying is where MIN_PARALLEL_JOB belongs.
    for segment in [16 * 1024, 64 * 1024, 128 * 1024, 256 * 1024, 1024 * 1024] {
        let pooled = parallel_rate(&secrets, cpu, threads, segment, 0);
        let inline = parallel_rate(&secrets, cpu, 1, segment, usize::MAX);
        print_line(&format!(
            "parallel keystream, {threads} threads, {:>4} KiB segments {pooled:8.0} MB/s (one thread {inline:6.0})",
            segment / 1024
        ))?;
    }
    if args.cpu_only {
        return Ok(ExitCode::SUCCESS);
    }

    let dir = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("norman-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = loopback_runs(&dir, &args, fused, &secrets);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn loopback_runs(dir: &Path, args: &BenchArgs, fused: f64, secrets: &StreamSecrets) -> CliResult {
    let src = dir.join("source.bin");
    crate::write_pseudo_random(&src, args.size_mib * MIB as u64)
        .map_err(|e| format!("writing {}: {e}", src.display()))?;
    let mut runs: Vec<(usize, Sink)> = args.chunk_sizes.iter().map(|&c| (c, Sink::Stream)).collect();
    if let Some(&last) = args.chunk_sizes.last() {
        runs.push((last, Sink::File));
    }
    for (chunk_size, sink) in runs {
        let lo = loopback(dir, &src, args.size_mib, chunk_size, sink, secrets)?;
        print_line(&format!(
            "loopback {} MiB, chunk {:>7} B, {}: {:6.0} MB/s ({:3.0}% of fused), peak RSS sender {:.1} MiB, receiver {:.1} MiB",
            args.size_mib,
            chunk_size,
            match sink {
                Sink::Stream => "receiver streams to a sink    ",
                Sink::File => "receiver writes, syncs a file",
            },
            lo.mb_per_s,
            100.0 * lo.mb_per_s / fused,
            lo.sender_peak_kib as f64 / 1024.0,
            lo.receiver_peak_kib as f64 / 1024.0
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the receiving process puts the upload: its stdout (sent to /dev/null, so the figure is the
/// upload path itself), or a file in the bench dir (fsync and rename included: the backend's path).
#[derive(Clone, Copy)]
enum Sink {
    Stream,
    File,
}

/// MB/s of the parallel keystream over `mib` MiB in `segment`-byte segments on `threads` threads,
/// segments under `min_job` bytes staying on this thread.
fn parallel_rate(secrets: &StreamSecrets, mib: usize, threads: usize, segment: usize, min_job: usize) -> f64 {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else { return 0.0 };
    let total = mib * MIB;
    rate(mib, || {
        runtime.block_on(async {
            let mut keystream =
                norman::socket::ParallelKeystream::new(secrets, 0, threads, segment).with_min_job(min_job);
            let mut done = 0;
            let mut pushed = 0;
            while done < total {
                match keystream.take_buffer() {
                    Some(buf) if pushed < total => {
                        let _ = keystream.push(buf, 0, segment);
                        pushed += segment;
                    }
                    spare => {
                        if let Some(buf) = spare {
                            keystream.recycle(buf);
                        }
                        match keystream.pop().await {
                            Some(Ok((buf, len))) => {
                                black_box(&buf);
                                done += len;
                                keystream.recycle(buf);
                            }
                            _ => break,
                        }
                    }
                }
            }
        })
    })
}

/// MB/s (10^6 bytes per second) of `mib` MiB processed by `work`.
fn rate(mib: usize, work: impl FnOnce()) -> f64 {
    rate_and_cpu(mib, work).0
}

/// MB/s of `mib` MiB processed by `work` per second of wall time, and per second of this thread's
/// CPU time (the figure a busy machine distorts least: time spent waiting for a core is not in it).
fn rate_and_cpu(mib: usize, work: impl FnOnce()) -> (f64, f64) {
    let (start, cpu_start) = (Instant::now(), thread_cpu_seconds());
    work();
    let (wall, cpu) = (start.elapsed().as_secs_f64(), thread_cpu_seconds() - cpu_start);
    let bytes = (mib * MIB) as f64;
    (bytes / wall / 1e6, bytes / cpu.max(1e-9) / 1e6)
}

fn thread_cpu_seconds() -> f64 {
    // SAFETY: timespec is plain old data that clock_gettime fills.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Loopback {
    mb_per_s: f64,
    sender_peak_kib: i64,
    receiver_peak_kib: i64,
}

fn loopback(
    dir: &Path,
    src: &Path,
    size_mib: u64,
    chunk_size: usize,
    sink: Sink,
    secrets: &StreamSecrets,
) -> CliResult<Loopback> {
    let io = |e: std::io::Error| format!("loopback benchmark: {e}");
    let received = dir.join("received.bin");
    let _ = std::fs::remove_file(&received);
    let exe = std::env::current_exe().map_err(io)?;

    let receiver_pairing = dir.join("receiver-pairing.json");
    write_pairing(&receiver_pairing, secrets, 1)?;
    let mut receiver = Command::new(&exe)
        .args(["receive", "--listen", "127.0.0.1:0", "--timeout", "60", "--size"])
        .arg((size_mib * MIB as u64).to_string())
        .arg("--pairing")
        .arg(&receiver_pairing)
        .arg("--out")
        .arg(match sink {
            Sink::Stream => Path::new("-"),
            Sink::File => &received,
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let port = read_listening_port(&mut receiver)?;

    let sender_pairing = dir.join("sender-pairing.json");
    write_pairing(&sender_pairing, secrets, port)?;
    let start = Instant::now();
    let mut sender = Command::new(&exe)
        .arg("send")
        .arg("--pairing")
        .arg(&sender_pairing)
        .arg(src)
        .env("NORMAN_CHUNK_SIZE", chunk_size.to_string())
        .stdout(Stdio::null())
        .spawn()
        .map_err(io)?;
    let (sender_ok, sender_peak_kib) = wait_rusage(&mut sender).map_err(io)?;
    let (receiver_ok, receiver_peak_kib) = wait_rusage(&mut receiver).map_err(io)?;
    let elapsed = start.elapsed().as_secs_f64();
    if !sender_ok || !receiver_ok {
        return Err(format!("loopback benchmark: sender ok={sender_ok}, receiver ok={receiver_ok}"));
    }
    Ok(Loopback {
        mb_per_s: (size_mib * MIB as u64) as f64 / elapsed / 1e6,
        sender_peak_kib,
        receiver_peak_kib,
    })
}

fn write_pairing(path: &Path, secrets: &StreamSecrets, port: u16) -> CliResult<()> {
    let json =
        serde_json::to_vec(&secrets.to_response("bench", "127.0.0.1", port)).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_listening_port(receiver: &mut Child) -> CliResult<u16> {
    let stderr = receiver.stderr.take().ok_or("receiver has no stderr")?;
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).map_err(|e| e.to_string())?;
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("receiver did not say where it listens: {line:?}"))
}

/// Waits for `child` and returns (exited with 0, peak resident set in KiB) from wait4's rusage.
fn wait_rusage(child: &mut Child) -> std::io::Result<(bool, i64)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the pid we own and have not reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, usage.ru_maxrss))
}
