//! `norman serve`: a real, local Norman backend (PROTOCOL.md §2-5) for tests, demos and offline work.
//!
//! Everything lives under `--data-dir`: `norman.sqlite3` (all metadata) and `blobs/` (file contents,
//! named by fresh uuids, never by client strings). Restarting on the same directory keeps everything;
//! uploads and downloads that were running when the process stopped are marked failed (flags Error).
//!
//! Choices where the public protocol leaves the backend free:
//! - Tokens: `access_token` and `id_token` are 256-bit random strings; only their SHA-256 is stored.
//!   Only an access token authorizes requests; `second_token` (generate/key) may be either. Tokens do
//!   not expire. API keys are stored the same way; passwords as Argon2id PHC strings.
//! - `login/default/{account_id}` works for accounts with no password, API key or verified email
//!   (what `signup/default` creates), and stops working once one is registered.
//! - Email one-time codes (signup/email, register/email, login/email/otp, resend): a random 6-digit
//!   code, valid 10 minutes, 5 attempts, single use, printed on stderr as
//!   `norman serve: one-time code for EMAIL: NNNNNN` (this backend sends no mail). Only its hash is stored.
//! - Every object belongs to one account; a token sees only its own account's objects.
//! - Status flags (current numbering on `persist/flags/get`, legacy numbering on the per-entity routes):
//!   model: `<P>_EFS_Staging`, `<P>_S3_Storage` for each prefix P of its assets; asset: the same two for
//!   its prefix (P = `Logo` for an asset named "Logo", `File` for any other); input: `Input_EFS_Staging`,
//!   `Input_S3_Storage`; output: `Output_EFS_Staging`, `Output_S3_Storage`; invocation:
//!   `Model_Function_Run`. Created Not_Started, In_Progress while a file streams in (from pairing time,
//!   or while a link downloads), then Finished or Error. A model's flags follow its assets'. An
//!   invocation's flag is Enqueued once all inputs are in, Finished once all outputs are in, Error if
//!   any input or output failed.
//! - The `echo` model: once an input of an invocation of a model named `echo` is in, it is copied to
//!   the output with the same index (outputs mirroring the inputs are created with the invocation when
//!   the model declares none), so invoke-then-retrieve works end to end.
//! - Uploads arrive on one shared listener on the server's listen IP (the pairing names it: the listen
//!   IP, or, when that is unspecified, the host the client reached the HTTP server at), each
//!   connection claimed by the pairing whose secrets open its header, within `--pairing-ttl-secs`;
//!   an account holds at most `--max-open-pairings` pairings open (429 beyond).
//! - Two API generations on the same data (routes.rs): the current one under `/v0/` (PROTOCOL.md §2)
//!   and norman-core 0.1.0's under `/legacy/v0/` (§5).
//! - Limits: a request's headers must arrive within `--header-timeout-secs` of the connection (or of
//!   the previous response on a kept-alive connection), which also closes idle keep-alive connections;
//!   on SIGTERM/SIGINT running requests get a short grace period, then every connection is closed.
//!   Link pulls are capped at `--max-pull-bytes` and refused to non-public addresses unless
//!   `--allow-private-links`; queries are capped below SQLite's own limits (query.rs).

mod accounts;
mod auth;
mod db;
mod flags;
mod http;
mod invocations;
mod models;
mod pull;
mod query;
mod retrieve;
mod routes;
mod store;
mod uploads;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

use crate::CliResult;

/// How long running requests may take to finish after SIGTERM/SIGINT before their connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(clap::Args)]
pub struct ServeArgs {
    /// HOST:PORT to listen on; port 0 picks a free one (the first stdout line says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory for the SQLite database and the blobs; created if missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// How long an upload pairing waits for its one connection, in seconds.
    #[arg(long, default_value_t = 300)]
    pairing_ttl_secs: u64,
    /// Upload pairings one account may hold open at once (not yet completed or expired).
    #[arg(long, default_value_t = 64)]
    max_open_pairings: usize,
    /// Deadline for a request's headers, counted from the connection (or from the previous response
    /// on a kept-alive connection, so idle connections close after it too), and again for its JSON
    /// body, in seconds.
    #[arg(long, default_value_t = 30)]
    header_timeout_secs: u64,
    /// The largest file a link pull (`file-pull/upload/*`) may fetch, in bytes.
    #[arg(long, default_value_t = pull::DEFAULT_MAX_BYTES)]
    max_pull_bytes: u64,
    /// Let link pulls reach loopback, private, link-local and unspecified addresses (refused by
    /// default: the server would fetch from its own network on a client's behalf).
    #[arg(long)]
    allow_private_links: bool,
}

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub pairing_ttl: Duration,
    /// Per account; see `--max-open-pairings`.
    pub max_open_pairings: usize,
    pub header_timeout: Duration,
    pub pull: pull::PullLimits,
}

impl ServeOptions {
    /// The defaults of `norman serve` for everything but where to listen and store.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeOptions {
            listen,
            data_dir,
            pairing_ttl: Duration::from_secs(300),
            max_open_pairings: 64,
            header_timeout: Duration::from_secs(30),
            pull: pull::PullLimits::default(),
        }
    }
}

/// A backend running on the current tokio runtime.
pub struct RunningServer {
    addr: SocketAddr,
    base_url: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    state: AppState,
}

#[allow(dead_code)] // `addr` and `base_url` are for embedders such as `norman demo`.
impl RunningServer {
    /// `http://HOST:PORT/v0/`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, abandons pending uploads, gives running requests [`SHUTDOWN_GRACE`]
    /// to finish, closes every connection, and returns once the server has stopped.
    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        uploads::abandon_all(&self.state);
        let result = self.server.await.map_err(|e| format!("server task: {e}"));
        // Pairings made while the connections drained.
        uploads::abandon_all(&self.state);
        result
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    db: db::Db,
    blobs: PathBuf,
    listen_ip: IpAddr,
    pairing_ttl: Duration,
    uploads: Arc<uploads::Hub>,
    http: reqwest::Client,
    pull: pull::PullLimits,
    /// Deadline of a request's headers, and of its JSON body once the headers are in.
    header_timeout: Duration,
}

/// Opens (or creates) the data directory, binds the listener and serves in the background.
pub async fn start(opts: ServeOptions) -> Result<RunningServer, String> {
    let blobs = opts.data_dir.join("blobs");
    std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
    let db = db::Db::open(&opts.data_dir.join("norman.sqlite3"), &blobs).await?;
    let dir = blobs.clone();
    db.call(move |conn| store::sweep_blobs(conn, &dir)).await.map_err(|e| e.detail)?;
    db.call(store::fail_interrupted_transfers).await.map_err(|e| e.detail)?;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("reading the listen address: {e}"))?;
    let (uploads_hub, upload_listener) = uploads::Hub::bind(addr.ip(), opts.max_open_pairings).await?;
    let state = AppState {
        db,
        blobs,
        listen_ip: addr.ip(),
        pairing_ttl: opts.pairing_ttl,
        uploads: uploads_hub.clone(),
        http: pull::client(&opts.pull)?,
        pull: opts.pull,
        header_timeout: opts.header_timeout,
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(uploads::reap_expired(state.clone(), stop.subscribe()));
    tokio::spawn(uploads::accept_uploads(uploads_hub, upload_listener, stop.subscribe()));
    let app = routes::router(state.clone());
    let server = tokio::spawn(serve_connections(listener, app, opts.header_timeout, stopped));
    Ok(RunningServer { addr, base_url: format!("http://{addr}/v0/"), stop, server, state })
}

/// The accept loop. Each connection is HTTP/1.1 with a header deadline (hyper's
/// `header_read_timeout` runs whenever the connection waits for a request head, so it also ends idle
/// keep-alive connections). On stop: no new connections, idle ones close at once, busy ones get
/// [`SHUTDOWN_GRACE`], then the rest are cut (a client trickling a request line cannot hold us).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn_stop = stop.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of descriptors or a connection reset before accept: do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                let mut stop = conn_stop.clone();
                conns.spawn(async move {
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = stopped(&mut stop) => {}
                    }
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while conns.join_next().await.is_some() {} });
    if drained.await.is_err() {
        conns.shutdown().await;
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// `norman serve`: runs until SIGINT or SIGTERM, then shuts down within a few seconds.
pub fn run(args: ServeArgs) -> CliResult {
    let listen = args
        .listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen {}: {e}", args.listen))?
        .next()
        .ok_or_else(|| format!("--listen {}: no address", args.listen))?;
    let opts = ServeOptions {
        listen,
        data_dir: args.data_dir,
        pairing_ttl: Duration::from_secs(args.pairing_ttl_secs.max(1)),
        max_open_pairings: args.max_open_pairings,
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        pull: pull::PullLimits { max_bytes: args.max_pull_bytes, allow_private: args.allow_private_links },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
        let server = start(opts).await?;
        let mut out = std::io::stdout();
        writeln!(out, "norman serve listening on {}", server.base_url())
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to stdout: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        server.shutdown().await
    });
    // Do not wait without bound for blocking work still running (a SQLite call, a file rename): the
    // process then ends as a crash would, which SQLite and the blob store survive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}
