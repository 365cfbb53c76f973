//! `norman`: the command-line face of libnorman.

mod account;
mod bench;
mod bson;
mod demo;
mod models;
mod msg;
mod serve;
mod transfer;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use norman::socket::{SocketClient, SocketPairingResponse};
use norman::AppConfig;
use norman_cli::receiver::{ReceiveOptions, UploadReceiver};

#[derive(Parser)]
#[command(name = "norman", version, about = "Move files to and from Norman, encrypted and checksummed")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the xxh3-64 checksum of each FILE, as `<16-hex>  FILE` (`-` reads standard input).
    Checksum {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a JSON list of {file, checksum, bytes}.
        #[arg(long)]
        json: bool,
    },
    /// Stream FILE to the upload socket of a pairing and print its checksum.
    Send {
        /// JSON file holding a SocketPairingResponse.
        #[arg(long)]
        pairing: PathBuf,
        file: PathBuf,
        /// Threads that encrypt (0: one per core; 1: one thread). Default: NORMAN_CIPHER_THREADS, else 0.
        #[arg(long)]
        cipher_threads: Option<usize>,
    },
    /// Accept one upload for a pairing and write it to --out; prints `<bytes> <16-hex>`.
    Receive {
        /// JSON file holding a SocketPairingResponse (its key, nonce and header are used).
        #[arg(long)]
        pairing: PathBuf,
        /// Address to listen on; port 0 picks a free one (printed on stderr).
        #[arg(long)]
        listen: SocketAddr,
        /// Where the file goes; it appears only when the upload ended cleanly. `-` streams to stdout
        /// instead (no such guarantee; the summary line then goes to stderr).
        #[arg(long)]
        out: PathBuf,
        /// Expected file size in bytes: a shorter or longer upload is an error.
        #[arg(long)]
        size: Option<u64>,
        /// Seconds to wait for the connection, and for data once connected.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
        /// Threads that decrypt (0: one per core; 1: one thread). Default: NORMAN_CIPHER_THREADS, else 0.
        #[arg(long)]
        cipher_threads: Option<usize>,
        /// Read buffer in bytes (with several threads: the segment size, 128 KiB to 4 MiB).
        #[arg(long, default_value_t = ReceiveOptions::default().buffer_size)]
        buffer_size: usize,
    },
    /// Upload a file as a model asset or an invocation input (token: NORMAN_TOKEN, else `login --save`).
    Push(transfer::PushArgs),
    /// Download a model asset or an invocation input or output (token as for push).
    Pull(transfer::PullArgs),
    /// Create an account and print its token (or store it with --save for later commands).
    Signup(account::SignupArgs),
    /// Log in and print the token (or store it with --save for later commands).
    Login(account::LoginArgs),
    /// Remove the token `--save` stored.
    Logout,
    /// Create and list models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Show the status flags of entities and whether each is done, failed or pending.
    Status(models::StatusArgs),
    /// Print the completion script for SHELL (e.g. `norman completions bash > ~/.local/share/bash-completion/completions/norman`).
    Completions { shell: clap_complete::Shell },
    /// Measure the cipher, the hash, the fused pass and a loopback upload; print the figures.
    Bench(bench::BenchArgs),
    /// Run the main job end to end on this machine and show what happened.
    Demo(demo::DemoArgs),
    /// Run a local Norman backend (every route, upload sockets, SQLite metadata, blobs on disk).
    Serve(serve::ServeArgs),
    /// BSON documents over TCP, one per frame, interoperable with py-bson's sendobj/recvobj.
    Bson(bson::BsonArgs),
    /// Framed messages compatible with netaio 0.0.9: a broker, a requester, a UDP node, a bench.
    Msg(msg::MsgArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "norman: {message}");
            if let Some(hint) = account::hint(&message) {
                let _ = writeln!(std::io::stderr(), "norman: hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A failed command: one line for stderr.
pub type CliResult<T = ExitCode> = Result<T, String>;

fn run(command: Command) -> CliResult {
    match command {
        Command::Checksum { files, json } => checksum(&files, json),
        Command::Send { pairing, file, cipher_threads } => {
            let pairing = read_pairing(&pairing)?;
            let mut config = AppConfig::from_env().map_err(|e| e.to_string())?;
            if let Some(threads) = cipher_threads {
                config.cipher_threads = threads;
                config.validate().map_err(|e| format!("--cipher-threads: {e}"))?;
            }
            let summary = runtime()?
                .block_on(SocketClient::new(config).write_file_and_digest(&pairing, &file))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            print_line(&format!("{}  {}", summary.checksum, file.display()))
        }
        Command::Receive { pairing, listen, out, size, timeout, cipher_threads, buffer_size } => {
            if buffer_size == 0 || buffer_size > norman::config::MAX_CHUNK_SIZE {
                return Err(format!(
                    "--buffer-size: 1 to {} bytes, got {buffer_size}",
                    norman::config::MAX_CHUNK_SIZE
                ));
            }
            let to_stdout = out.as_os_str() == "-";
            let secrets = read_pairing(&pairing)?.validate().map_err(|e| e.to_string())?.secrets;
            let timeout =
                Duration::try_from_secs_f64(timeout).map_err(|_| format!("bad --timeout {timeout}"))?;
            let cipher_threads = norman_cli::receiver::cipher_threads(cipher_threads)?;
            let options = ReceiveOptions {
                expected_size: size,
                accept_timeout: timeout,
                idle_timeout: timeout,
                cipher_threads,
                buffer_size,
                ..ReceiveOptions::default()
            };
            let received = runtime()?.block_on(async {
                let receiver =
                    UploadReceiver::bind(listen, secrets, options).await.map_err(|e| e.to_string())?;
                let addr = receiver.local_addr().map_err(|e| e.to_string())?;
                let _ = writeln!(std::io::stderr(), "norman receive listening on {addr}");
                if to_stdout {
                    receiver.receive(&mut stdout_sink()?).await.map_err(|e| e.to_string())
                } else {
                    receiver.receive_to_file(&out).await.map_err(|e| e.to_string())
                }
            })?;
            let summary = format!("{} {}", received.bytes, received.checksum);
            if to_stdout {
                let _ = writeln!(std::io::stderr(), "{summary}");
                Ok(ExitCode::SUCCESS)
            } else {
                print_line(&summary)
            }
        }
        Command::Push(args) => transfer::push(args),
        Command::Pull(args) => transfer::pull(args),
        Command::Signup(args) => account::signup(args),
        Command::Login(args) => account::login(args),
        Command::Logout => account::logout(),
        Command::Models(command) => models::models(command),
        Command::Status(args) => models::status(args),
        Command::Completions { shell } => models::completions(shell),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bson(args) => bson::run(args),
        Command::Msg(args) => msg::run(args),
    }
}

fn checksum(files: &[PathBuf], json: bool) -> CliResult {
    let mut failed = false;
    let mut sums = Vec::new();
    for file in files {
        let sum = if file.as_os_str() == "-" {
            norman::checksum::checksum_reader(std::io::stdin().lock())
        } else {
            norman::checksum::checksum_file(file)
        };
        match sum {
            Ok((sum, bytes)) if json => {
                sums.push(serde_json::json!({ "file": file, "checksum": sum.to_hex(), "bytes": bytes }))
            }
            Ok((sum, _)) => {
                print_line(&format!("{sum}  {}", file.display()))?;
            }
            Err(e) => {
                failed = true;
                let _ = writeln!(std::io::stderr(), "norman: {}: {e}", file.display());
            }
        }
    }
    if json {
        print_line(&serde_json::Value::Array(sums).to_string())?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn read_pairing(path: &Path) -> CliResult<SocketPairingResponse> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    SocketPairingResponse::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Stdout as a receive sink written in place (tokio's `Stdout` would copy every chunk and hand it
/// to another thread).
fn stdout_sink() -> CliResult<norman::streaming::InlineFileWriter> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout().as_fd().try_clone_to_owned().map_err(|e| format!("stdout: {e}"))?;
    Ok(norman::streaming::InlineFileWriter(std::fs::File::from(fd)))
}

pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// println! that reports a closed stdout instead of panicking.
pub fn print_line(line: &str) -> CliResult {
    writeln!(std::io::stdout(), "{line}").map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `size` bytes of cheap pseudo-random data (xorshift64), for demos and benchmarks.
pub fn write_pseudo_random(path: &Path, size: u64) -> std::io::Result<()> {
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
