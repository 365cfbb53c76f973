//! `norman demo`: the main job, end to end on this machine. Generates a file, uploads it through the
//! encrypted upload stream to a receiver on loopback (the backend's side of the protocol), and checks
//! that the checksum the sender computed, the one the receiver computed, and an independent pass over
//! both files agree.

use std::path::Path;
use std::time::Instant;

use norman::socket::{ReceiveOptions, SocketClient, StreamSecrets, UploadReceiver};
use norman::AppConfig;

use crate::{print_line, CliResult};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Size of the generated file, in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
}

pub fn run(args: DemoArgs) -> CliResult {
    let dir = tempdir()?;
    let result = demo(&dir, args.size_mib);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn demo(dir: &Path, size_mib: u64) -> CliResult {
    let size = size_mib * 1024 * 1024;
    let src = dir.join("model.bin");
    let out = dir.join("received.bin");
    print_line(&format!("1. generating {size_mib} MiB of test data in {}", src.display()))?;
    write_pseudo_random(&src, size).map_err(|e| format!("{}: {e}", src.display()))?;

    let secrets = StreamSecrets::generate(32);
    let config = AppConfig { chunk_size: 1 << 20, ..AppConfig::from_env().map_err(|e| e.to_string())? };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (sent, received, secs) = runtime
        .block_on(async {
            let options = ReceiveOptions { expected_size: Some(size), ..ReceiveOptions::default() };
            let receiver = UploadReceiver::bind("127.0.0.1:0", secrets.clone(), options).await?;
            let addr = receiver.local_addr()?;
            let pairing = secrets.to_response("demo-pairing", "127.0.0.1", addr.port());
            print_line(&format!(
                "2. pairing issued: upload socket {addr}, fresh 32-byte key, 12-byte nonce, 32-byte header"
            ))
            .map_err(norman::Error::InvalidArgument)?;
            let out = out.clone();
            let receiving = tokio::spawn(async move { receiver.receive_to_file(&out).await });
            let start = Instant::now();
            let sent = SocketClient::new(config).write_file_and_digest(&pairing, &src).await?;
            let received = receiving
                .await
                .map_err(|e| norman::Error::InvalidArgument(format!("receiver task: {e}")))??;
            Ok::<_, norman::Error>((sent, received, start.elapsed().as_secs_f64()))
        })
        .map_err(|e| e.to_string())?;
    print_line(&format!(
        "3. sent {} bytes encrypted (ChaCha20) in {:.2} s: {:.0} MB/s; sender checksum   {}",
        sent.bytes,
        secs,
        sent.bytes as f64 / secs / 1e6,
        sent.checksum
    ))?;
    print_line(&format!(
        "4. receiver stored {} bytes;                          receiver checksum {}",
        received.bytes, received.checksum
    ))?;

    let (src_sum, _) = norman::checksum::checksum_file(&src).map_err(|e| e.to_string())?;
    let (out_sum, out_len) = norman::checksum::checksum_file(&out).map_err(|e| e.to_string())?;
    print_line(&format!("5. independent xxh3-64 of the source {src_sum}, of the stored file {out_sum}"))?;
    if sent.checksum != received.checksum || src_sum != out_sum || src_sum != sent.checksum || out_len != size
    {
        return Err("checksums disagree: the round trip is NOT verified".into());
    }
    print_line("verified: the stored file is byte-identical to the source")
}

fn tempdir() -> CliResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "norman-demo-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_pseudo_random(path: &Path, size: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x = 0x853c49e6748fea9bu64;
    let mut left = size;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()
}
