//! `norman bson bench`: documents per second one way over loopback, 1 KiB and 1 MiB documents,
//! through libnorman's frames and, in the same run, through py-bson's `sendobj`/`recvobj` on the
//! same workload (numbers, not pass/fail).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use norman::bson_frame::{from_relaxed_extjson, Dialect, FrameReader, FrameWriter, Limits, RawDocumentBuf};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::{print_line, CliResult};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Python with py-bson 0.5.10 (default: $NORMAN_TEST_PYTHON; without either, py-bson is skipped).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Documents of 1 KiB that libnorman sends (py-bson sends a tenth as many).
    #[arg(long, default_value_t = 400_000)]
    count_1k: u32,
    /// Documents of 1 MiB that libnorman sends (py-bson sends a fifth as many).
    #[arg(long, default_value_t = 1_000)]
    count_1m: u32,
}

/// The py-bson side: a receiver on 127.0.0.1 and a sender thread in one process, as ours.
const PY_BSON_BENCH: &str = r#"
import socket, sys, threading, time, bson
bson.patch_socket()
size, count = int(sys.argv[1]), int(sys.argv[2])
doc = {"id": 1, "payload": b"\x07" * (size - 27)}
assert len(bson.dumps(doc)) == size
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def send():
    c = socket.create_connection(srv.getsockname())
    for _ in range(count):
        c.sendobj(doc)
    c.close()
sender = threading.Thread(target=send)
sender.start()
conn, _ = srv.accept()
start = time.perf_counter()
received = 0
while conn.recvobj() is not None:
    received += 1
elapsed = time.perf_counter() - start
sender.join()
assert received == count, (received, count)
print(count / elapsed)
"#;

pub fn run(args: BenchArgs) -> CliResult {
    let python = args.python.or_else(|| std::env::var_os("NORMAN_TEST_PYTHON").map(Into::into));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    print_line("one-way documents over loopback, sender and receiver in one process (documents/s):")?;
    for (label, size, count) in [("1 KiB", 1024usize, args.count_1k), ("1 MiB", 1 << 20, args.count_1m)] {
        let ours = runtime.block_on(ours_per_second(size, count.max(1)))?;
        let line = match &python {
            None => "py-bson skipped: no --python and NORMAN_TEST_PYTHON unset".to_owned(),
            Some(python) => {
                let py_count = if size == 1024 { count / 10 } else { count / 5 };
                let theirs = py_bson_per_second(python, size, py_count.max(1))?;
                format!("py-bson {theirs:>10.0}   ratio {:.1}x", ours / theirs)
            }
        };
        print_line(&format!(
            "  {label}: libnorman {ours:>10.0} ({:.0} MiB/s)   {line}",
            ours * size as f64 / 1048576.0
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"id": 1, "payload": <binary>}` of exactly `size` bytes, as the py-bson side builds it.
fn document(size: usize) -> CliResult<RawDocumentBuf> {
    let payload = STANDARD.encode(vec![7u8; size - 27]);
    let json =
        format!(r#"{{"id": 1, "payload": {{"$binary": {{"base64": "{payload}", "subType": "00"}}}}}}"#);
    let doc = from_relaxed_extjson(&json, Dialect::Standard).map_err(|e| e.to_string())?;
    if doc.as_bytes().len() != size {
        return Err(format!("benchmark document is {} bytes, not {size}", doc.as_bytes().len()));
    }
    Ok(doc)
}

async fn ours_per_second(size: usize, count: u32) -> CliResult<f64> {
    let doc = document(size)?;
    let limits = Limits::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sender = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let mut out = BufWriter::with_capacity(1 << 16, stream);
        let mut writer = FrameWriter::new(limits, Dialect::Standard);
        for _ in 0..count {
            writer.send_raw(&mut out, &doc).await.map_err(|e| e.to_string())?;
        }
        out.flush().await.map_err(|e| e.to_string())
    });
    let (stream, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
    let start = Instant::now();
    let mut input = BufReader::with_capacity(1 << 16, stream);
    let mut frames = FrameReader::new(limits);
    let mut received = 0u32;
    while frames.read(&mut input, None).await.map_err(|e| e.to_string())?.is_some() {
        received += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    sender.await.map_err(|e| e.to_string())??;
    if received != count {
        return Err(format!("received {received} of {count} documents"));
    }
    Ok(f64::from(count) / seconds)
}

fn py_bson_per_second(python: &Path, size: usize, count: u32) -> CliResult<f64> {
    let out = Command::new(python)
        .args(["-c", PY_BSON_BENCH, &size.to_string(), &count.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("py-bson bench failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("py-bson bench printed no rate: {e}"))
}
