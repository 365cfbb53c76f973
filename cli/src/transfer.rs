//! `norman push` and `norman pull`: one file to or from Norman, with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use norman::http::HttpClient;
use norman::services::{UploadTarget, Uploads};
use norman::streaming::InlineFileWriter;
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
    /// Where to write the file; it appears only once complete.
    #[arg(long)]
    out: PathBuf,
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
    let (_, http) = client_from_env()?;
    let bar = progress_bar();
    let (bytes, checksum) = runtime()?.block_on(async {
        let retrieve = http.retrieve();
        let stream = if let Some(a) = &args.asset {
            let [account, model, asset] = split_path("asset", a)?;
            retrieve.get_model_asset(&account, &model, &asset, None).await
        } else if let Some(i) = &args.input {
            let [account, model, invocation, input] = split_path("input", i)?;
            retrieve.get_invocation_input(&account, &model, &invocation, &input, None).await
        } else if let Some(o) = &args.output {
            let [account, model, invocation, output] = split_path("output", o)?;
            retrieve.get_invocation_output(&account, &model, &invocation, &output, None).await
        } else {
            return Err("give --asset, --input or --output".to_owned());
        }
        .map_err(|e| e.to_string())?;
        if let Some(len) = stream.content_length {
            bar.set_length(len);
        }
        save_stream(stream, &args.out, |n| bar.set_position(n)).await
    })?;
    bar.finish_and_clear();
    print_line(&format!("{checksum}  {}  ({bytes} bytes)", args.out.display()))
}

/// Writes a download to `dest` through a temporary file, hashing as it goes; `dest` appears only
/// when the stream ended with every byte the server announced.
pub async fn save_stream(
    mut stream: norman::http::ByteStream,
    dest: &Path,
    mut progress: impl FnMut(u64),
) -> CliResult<(u64, norman::Checksum)> {
    use tokio::io::AsyncWriteExt;
    let expected = stream.content_length;
    let mut part = norman::streaming::PartFile::create_beside(dest).await.map_err(|e| e.to_string())?;
    let mut hasher = norman::Hasher::new();
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        hasher.update(&chunk);
        let writer: &mut InlineFileWriter = part.writer();
        writer.write_all(&chunk).await.map_err(|e| format!("{}: {e}", dest.display()))?;
        progress(hasher.len());
    }
    if let Some(expected) = expected {
        if hasher.len() != expected {
            return Err(format!("download ended early: {} of {expected} bytes", hasher.len()));
        }
    }
    part.commit(dest).await.map_err(|e| e.to_string())?;
    Ok((hasher.len(), hasher.digest()))
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
