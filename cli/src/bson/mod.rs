//! `norman bson serve` and `norman bson send`: BSON documents over TCP, one per frame, as py-bson's
//! `sendobj`/`recvobj` exchange them. Each document prints as one line of relaxed Extended JSON.
//! `norman bson bench` measures documents per second next to py-bson.

mod bench;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use norman::bson_frame::{
    from_relaxed_extjson, to_relaxed_extjson, Dialect, FrameReader, FrameWriter, Limits, RawDocument,
    DEFAULT_MAX_BYTES, MIN_DOCUMENT_BYTES,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::{print_line, runtime, CliResult};

#[derive(clap::Args)]
pub struct BsonArgs {
    #[command(subcommand)]
    command: BsonCommand,
}

#[derive(clap::Subcommand)]
enum BsonCommand {
    /// Accept connections; print each document received as one line of relaxed Extended JSON.
    Serve {
        /// HOST:PORT to listen on; port 0 picks a free one (the first stdout line names it).
        #[arg(long, value_name = "HOST:PORT")]
        listen: String,
        /// Send each document back unchanged.
        #[arg(long)]
        echo: bool,
        /// Largest document accepted, in bytes (its length prefix included).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BYTES)]
        max_bytes: u32,
        /// Print py-bson's 0x11 elements as the unsigned integers it means.
        #[arg(long)]
        py_bson: bool,
    },
    /// Send one document (relaxed Extended JSON), then print the documents received.
    #[command(group = clap::ArgGroup::new("doc").required(true))]
    Send {
        #[arg(value_name = "HOST:PORT")]
        addr: String,
        /// The document, as relaxed Extended JSON.
        #[arg(long, group = "doc", value_name = "DOC")]
        json: Option<String>,
        /// A file holding the document as relaxed Extended JSON (`-`: standard input).
        #[arg(long, group = "doc", value_name = "F")]
        json_file: Option<PathBuf>,
        /// How many documents to wait for and print after sending.
        #[arg(long, value_name = "N", default_value_t = 0)]
        receive: u64,
        /// Deadline for the whole exchange (connect, send, receive).
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        timeout_ms: u64,
        /// Speak to a py-bson peer: refuse what py-bson cannot read or misreads (naming the field),
        /// send integers above 2^63-1 as its uint64 (0x11), and print received 0x11 as integers.
        #[arg(long)]
        py_bson: bool,
    },
    /// Documents per second one way over loopback (1 KiB, 1 MiB), next to py-bson's sendobj/recvobj.
    Bench(bench::BenchArgs),
}

pub fn run(args: BsonArgs) -> CliResult {
    match args.command {
        BsonCommand::Serve { listen, echo, max_bytes, py_bson } => {
            if max_bytes < MIN_DOCUMENT_BYTES {
                return Err(format!(
                    "--max-bytes {max_bytes}: a document takes at least {MIN_DOCUMENT_BYTES} bytes"
                ));
            }
            let limits = Limits { max_bytes, ..Limits::default() };
            let dialect = if py_bson { Dialect::PyBson } else { Dialect::Standard };
            runtime()?.block_on(serve(&listen, echo, limits, dialect))
        }
        BsonCommand::Send { addr, json, json_file, receive, timeout_ms, py_bson } => {
            let text = match (json, json_file) {
                (Some(text), _) => text,
                (None, Some(path)) if path.as_os_str() == "-" => {
                    std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
                }
                (None, Some(path)) => {
                    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                (None, None) => return Err("give --json DOC or --json-file F".into()),
            };
            let dialect = if py_bson { Dialect::PyBson } else { Dialect::Standard };
            let doc = from_relaxed_extjson(&text, dialect).map_err(|e| e.to_string())?;
            // The JSON reader turns only integers above i64::MAX into 0x11 (and refuses $timestamp).
            let writer = FrameWriter::new(Limits::default(), dialect).allow_uint64(true);
            writer.check(&doc).map_err(|e| e.to_string())?;
            let timeout = Duration::from_millis(timeout_ms);
            runtime()?.block_on(send(&addr, writer, &doc, receive, timeout, dialect))
        }
        BsonCommand::Bench(args) => bench::run(args),
    }
}

async fn serve(listen: &str, echo: bool, limits: Limits, dialect: Dialect) -> CliResult {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    print_line(&format!("norman bson listening on {local}"))?;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: report, breathe, go on.
                let _ = writeln!(std::io::stderr(), "norman bson: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(message) = connection(stream, echo, limits, dialect).await {
                let _ = writeln!(std::io::stderr(), "norman bson: {peer}: {message}; connection closed");
            }
        });
    }
}

/// Serves one connection until the peer closes it, or until a bad frame (then the caller reports
/// it and the connection is dropped: after a truncated or mis-sized frame the stream is out of step).
async fn connection(stream: TcpStream, echo: bool, limits: Limits, dialect: Dialect) -> CliResult<()> {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut frames = FrameReader::new(limits);
    while let Some(doc) = frames.read(&mut read, None).await.map_err(|e| e.to_string())? {
        print_document(doc, dialect)?;
        if echo {
            write.write_all(doc.as_bytes()).await.map_err(|e| format!("echo failed: {e}"))?;
        }
    }
    Ok(())
}

fn print_document(doc: &RawDocument, dialect: Dialect) -> CliResult<()> {
    let mut line = to_relaxed_extjson(doc, dialect).map_err(|e| e.to_string())?;
    line.push('\n');
    // One write per line, so that lines of concurrent connections never interleave.
    std::io::stdout().lock().write_all(line.as_bytes()).map_err(|e| format!("writing to stdout: {e}"))
}

async fn send(
    addr: &str,
    mut writer: FrameWriter,
    doc: &RawDocument,
    receive: u64,
    timeout: Duration,
    dialect: Dialect,
) -> CliResult {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let timed_out = |what: &str| format!("timed out after {} ms {what}", timeout.as_millis());
    let stream = tokio::time::timeout(left(), TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out(&format!("connecting to {addr}")))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let peer: SocketAddr = stream.peer_addr().map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    tokio::time::timeout(left(), writer.send_raw(&mut write, doc))
        .await
        .map_err(|_| timed_out(&format!("sending to {peer}")))?
        .map_err(|e| format!("{peer}: {e}"))?;
    let mut read = BufReader::with_capacity(64 * 1024, read);
    let mut frames = FrameReader::new(Limits::default());
    for received in 0..receive {
        let waiting = format!("waiting for document {} of {receive} from {peer}", received + 1);
        let next = tokio::time::timeout(left(), frames.read(&mut read, None))
            .await
            .map_err(|_| timed_out(&waiting))?
            .map_err(|e| format!("{peer}: {e}"))?;
        let Some(doc) = next else {
            return Err(format!("{peer} closed the connection after {received} of {receive} documents"));
        };
        print_document(doc, dialect)?;
    }
    // A clean close: py-bson's recvobj() then returns None.
    let _ = write.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
