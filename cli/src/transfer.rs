//! `norman push` and `norman pull`: one file to or from Norman, with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use norman::http::HttpClient;
use norman::transfer::{Downloads, FileTarget, UploadTarget, Uploads};
use norman::AppConfig;

use crate::{print_line, runtime, CliResult};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true))]
pub struct PushArgs {
    /// Upload a model asset: ACCOUNT/MODEL/ASSET.
    #[arg(long, group = "target", value_name = "ACCOUNT/MODEL/ASSET")]
    asset: Option<String>,
    /// Upload an invocation input: ACCOUNT/MODEL/INVOCATION/INPUT.
    #[arg(long, group = "target", value_name = "ACCOUNT/MODEL/INVOCATION/INPUT")]
    input: Option<String>,
    file: PathBuf,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct PullArgs {
    /// A model asset: ACCOUNT/MODEL/ASSET.
    #[arg(long, group = "source", value_name = "ACCOUNT/MODEL/ASSET")]
    asset: Option<String>,
    /// An invocation input: ACCOUNT/MODEL/INVOCATION/INPUT.
    #[arg(long, group = "source", value_name = "ACCOUNT/MODEL/INVOCATION/INPUT")]
    input: Option<String>,
    /// An invocation output: ACCOUNT/MODEL/INVOCATION/OUTPUT.
    #[arg(long, group = "source", value_name = "ACCOUNT/MODEL/INVOCATION/OUTPUT")]
    output: Option<String>,
    /// Where to write the file; it appears only once complete and verified. An existing file is
    /// kept unless --force; a directory is refused.
    #[arg(long)]
    out: PathBuf,
    /// Replace the file at --out if there is one.
    #[arg(long)]
    force: bool,
}

/// The configured client: NORMAN_BASE_URL and friends, and the token from NORMAN_TOKEN or the file
/// `norman login --save` wrote (account.rs).
pub fn client_from_env() -> CliResult<(AppConfig, HttpClient)> {
    crate::account::client_from_env()
}

fn split_path<const N: usize>(flag: &str, value: &str) -> CliResult<[String; N]> {
    let parts: Vec<String> = value.split('/').map(str::to_owned).collect();
    match <[String; N]>::try_from(parts) {
        Ok(parts) if parts.iter().all(|p| !p.is_empty()) => Ok(parts),
        _ => Err(format!("--{flag} expects {N} non-empty parts separated by '/', got {value:?}")),
    }
}

pub fn push(args: PushArgs) -> CliResult {
    let target = match (&args.asset, &args.input) {
        (Some(a), _) => {
            let [account_id, model_id, asset_id] = split_path("asset", a)?;
            UploadTarget::Asset { account_id, model_id, asset_id }
        }
        (_, Some(i)) => {
            let [account_id, model_id, invocation_id, input_id] = split_path("input", i)?;
            UploadTarget::Input { account_id, model_id, invocation_id, input_id }
        }
        _ => return Err("give --asset or --input".into()),
    };
    let (config, http) = client_from_env()?;
    let bar = progress_bar();
    let progress = {
        let bar = bar.clone();
        move |sent: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(sent);
        }
    };
    let start = Instant::now();
    let summary = runtime()?
        .block_on(Uploads::new(&http, &config).push_file(&target, &args.file, progress))
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    bar.finish_and_clear();
    print_line(&format!(
        "{}  {}  ({} bytes, {:.0} MB/s)",
        summary.checksum,
        args.file.display(),
        summary.bytes,
        summary.bytes as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e6
    ))
}

pub fn pull(args: PullArgs) -> CliResult {
    let target = if let Some(a) = &args.asset {
        let [account_id, model_id, asset_id] = split_path("asset", a)?;
        FileTarget::Asset { account_id, model_id, asset_id }
    } else if let Some(i) = &args.input {
        let [account_id, model_id, invocation_id, input_id] = split_path("input", i)?;
        FileTarget::Input { account_id, model_id, invocation_id, input_id }
    } else if let Some(o) = &args.output {
        let [account_id, model_id, invocation_id, output_id] = split_path("output", o)?;
        FileTarget::Output { account_id, model_id, invocation_id, output_id }
    } else {
        return Err("give --asset, --input or --output".to_owned());
    };
    // Refused before anything is requested, so no byte is downloaded for nothing.
    match std::fs::metadata(&args.out) {
        Ok(meta) if meta.is_dir() => {
            return Err(format!("{}: is a directory; --out names the file to write", args.out.display()))
        }
        Ok(_) if !args.force => {
            return Err(format!("{}: exists; pass --force to replace it", args.out.display()))
        }
        _ => {}
    }
    let (_, http) = client_from_env()?;
    let bar = progress_bar();
    let start = Instant::now();
    let summary = runtime()?
        .block_on(async {
            let download = async {
                let stream = Downloads::new(&http).open(&target).await?;
                if let Some(len) = stream.content_length() {
                    bar.set_length(len);
                }
                stream.save_to(&args.out, |n| bar.set_position(n)).await
            };
            // SIGINT or SIGTERM drops the download, and with it the temporary file: nothing partial
            // is left behind (the default action would kill the process before it could clean up).
            tokio::select! {
                result = download => result.map_err(|e| e.to_string()),
                signal = interrupted() => Err(signal),
            }
        })
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    bar.finish_and_clear();
    print_line(&format!(
        "{}  {}  ({} bytes, {:.0} MB/s)",
        summary.checksum,
        args.out.display(),
        summary.bytes,
        summary.bytes as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e6
    ))
}

/// Resolves with a message when SIGINT or SIGTERM arrives (never, if the handlers cannot be set).
async fn interrupted() -> String {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "interrupted (SIGINT); the partial file was removed".to_owned(),
            _ = term.recv() => "terminated (SIGTERM); the partial file was removed".to_owned(),
        },
        _ => std::future::pending().await,
    }
}

/// A byte progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    let _ = std::io::stderr().flush();
    bar
}
