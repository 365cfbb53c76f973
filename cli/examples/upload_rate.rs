//! The Rust-API side of the C benchmark (scripts/bench-c.sh): streams `--mib` MiB from memory in
//! `--write-size`-byte `UploadStream::write` calls to a `norman receive` on loopback and prints
//! `rust <write-size> <MB/s>`. tests/c/bench.c does the same through `norman_upload_write`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use norman::socket::SocketClient;
use norman::AppConfig;
use norman_cli::receiver::generate_secrets;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let write_size = arg("--write-size", 65536);
    let mib = arg("--mib", 256);
    let norman = std::env::var("NORMAN_BIN").unwrap_or_else(|_| "norman".into());
    let dir = std::env::temp_dir().join(format!("upload-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secrets = generate_secrets(32);
    let pairing_path = dir.join("pairing.json");
    std::fs::write(&pairing_path, serde_json::to_vec(&secrets.to_response("bench", "127.0.0.1", 1))?)?;
    let mut receiver = Command::new(&norman)
        .args(["receive", "--pairing"])
        .arg(&pairing_path)
        .args(["--listen", "127.0.0.1:0", "--out", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(receiver.stderr.take().ok_or("no stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    let port: u16 = line.trim().rsplit(':').next().ok_or("no port")?.parse()?;
    let pairing = secrets.to_response("bench", "127.0.0.1", port);

    let data: Vec<u8> = (0..4usize << 20).map(|i| (i * 131 % 251) as u8).collect();
    let total = mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let start = Instant::now();
    runtime.block_on(async {
        let mut upload = SocketClient::new(AppConfig::default()).open(&pairing).await?;
        let mut sent = 0;
        while sent < total {
            let at = sent % data.len();
            let n = write_size.min(total - sent).min(data.len() - at);
            upload.write(&data[at..at + n]).await?;
            sent += n;
        }
        upload.finish().await.map(drop)
    })?;
    let secs = start.elapsed().as_secs_f64();
    let status = receiver.wait()?;
    std::fs::remove_dir_all(&dir)?;
    if !status.success() {
        return Err("the receiver failed".into());
    }
    println!("rust {write_size} {:.0}", total as f64 / secs / 1e6);
    Ok(())
}
