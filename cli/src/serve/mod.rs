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
mod store;
mod uploads;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post, put};
use axum::Router;

use crate::CliResult;

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
}

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub pairing_ttl: Duration,
    /// Per account; see `--max-open-pairings`.
    pub max_open_pairings: usize,
}

/// A backend running on the current tokio runtime.
pub struct RunningServer {
    addr: SocketAddr,
    base_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
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

    /// Stops accepting requests, lets running ones finish, abandons pending uploads, and returns once
    /// the server has stopped.
    pub async fn shutdown(self) -> Result<(), String> {
        let _ = self.stop.send(true);
        let result = match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("server error: {e}")),
            Err(e) => Err(format!("server task: {e}")),
        };
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
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let state = AppState {
        db,
        blobs,
        listen_ip: addr.ip(),
        pairing_ttl: opts.pairing_ttl,
        uploads: uploads_hub.clone(),
        http,
    };
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(uploads::reap_expired(state.clone(), stop.subscribe()));
    tokio::spawn(uploads::accept_uploads(uploads_hub, upload_listener, stop.subscribe()));
    let app = router(state.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok(RunningServer { addr, base_url: format!("http://{addr}/v0/"), stop, server, state })
}

/// `norman serve`: runs until SIGINT or SIGTERM, then shuts down cleanly.
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
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
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
    })?;
    Ok(ExitCode::SUCCESS)
}

fn router(state: AppState) -> Router {
    let account_routes = post(accounts::create_accounts)
        .put(accounts::replace_accounts)
        .patch(accounts::update_accounts)
        .delete(accounts::delete_accounts);
    let v0 = Router::new()
        // Authenticate: no token needed.
        .route("/authenticate/login/default/{account_id}", post(auth::login_default))
        .route("/authenticate/login/key", post(auth::login_key))
        .route("/authenticate/login/password/account_id", post(auth::login_password_account_id))
        .route("/authenticate/login/password/name", post(auth::login_password_name))
        .route("/authenticate/login/password/email", post(auth::login_password_email))
        .route("/authenticate/login/email/otp", post(auth::login_email_otp))
        .route("/authenticate/login/email/otp/verify", post(auth::login_email_otp_verify))
        .route("/authenticate/signup/default", put(auth::signup_default))
        .route("/authenticate/signup/password", put(auth::signup_password))
        .route("/authenticate/signup/email", put(auth::signup_email))
        .route("/authenticate/signup/key", put(auth::signup_key))
        // Authenticate: token needed.
        .route("/authenticate/register/get/authentication/factors/{account_id}", get(auth::factors))
        .route("/authenticate/generate/key", post(auth::generate_key))
        .route("/authenticate/register/password", post(auth::register_password))
        .route("/authenticate/register/email", post(auth::register_email))
        .route("/authenticate/register/email/verify/{email}/{code}", post(auth::register_email_verify))
        .route("/authenticate/register/email/resend/otp", post(auth::register_email_resend))
        .route("/authenticate/accounts/get", post(accounts::get_accounts))
        .route("/authenticate/accounts", account_routes.clone())
        // §5: accounts under persist.
        .route("/persist/accounts/get", post(accounts::get_accounts))
        .route("/persist/accounts", account_routes)
        // Persist.
        .route("/persist/models/get", post(models::get_models))
        .route("/persist/models/bases/get", post(models::get_bases))
        .route(
            "/persist/models/",
            post(models::create_models).patch(models::replace_models).delete(models::delete_models),
        )
        .route(
            "/persist/models",
            post(models::create_models).patch(models::replace_models).delete(models::delete_models),
        )
        .route("/persist/models/version", post(models::add_versions).patch(models::set_active))
        .route("/persist/invocations/get", post(invocations::get_invocations))
        .route("/persist/invocation/history/get", post(invocations::get_invocations))
        .route("/persist/invocations", post(invocations::create_invocations))
        .route("/persist/invocations/by-name", post(invocations::create_by_name))
        .route("/persist/notifications/get", post(invocations::get_notifications))
        .route("/persist/flags/get", post(flags::get_flags))
        // §5: legacy per-entity flag routes.
        .route("/persist/model/flags/get", flags::legacy("model"))
        .route("/persist/asset/flags/get", flags::legacy("asset"))
        .route("/persist/invocation/flags/get", flags::legacy("invocation"))
        .route("/persist/input/flags/get", flags::legacy("input"))
        .route("/persist/output/flags/get", flags::legacy("output"))
        // File push.
        .route("/file-push/socket/pair/asset", post(uploads::pair_asset))
        .route("/file-push/socket/pair/input", post(uploads::pair_input))
        .route("/file-push/socket/complete", post(uploads::complete))
        // File pull.
        .route("/file-pull/metadata/{entity_id}", get(pull::metadata))
        .route("/file-pull/upload/assets", pull::upload(store::Kind::Asset))
        .route("/file-pull/upload/inputs", pull::upload(store::Kind::Input))
        .route("/file-pull/upload/outputs", pull::upload(store::Kind::Output))
        // Retrieve.
        .route("/retrieve/asset/{account_id}/{model_id}/{asset_id}", get(retrieve::asset))
        .route("/retrieve/input/{account_id}/{model_id}/{invocation_id}/{input_id}", get(retrieve::input))
        .route("/retrieve/output/{account_id}/{model_id}/{invocation_id}/{output_id}", get(retrieve::output));
    Router::new().nest("/v0", v0).fallback(http::not_found).with_state(state)
}
