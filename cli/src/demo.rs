//! `norman demo`: the main job, end to end on this machine. Starts an embedded Norman backend on a
//! temporary data dir, signs up, creates a model, pushes a generated file through the encrypted upload
//! socket, pulls it back through the retrieve route, and verifies every checksum.

use std::path::Path;
use std::time::{Duration, Instant};

use norman::http::HttpClient;
use norman::objects::Model;
use norman::transfer::{Downloads, FileTarget, UploadTarget, Uploads};
use norman::AppConfig;

use crate::serve::{self, ServeOptions};
use crate::{print_line, CliResult};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Size of the generated file, in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
}

pub fn run(args: DemoArgs) -> CliResult {
    let dir = std::env::temp_dir().join(format!(
        "norman-demo-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(demo(&dir, args.size_mib));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(dir: &Path, size_mib: u64) -> CliResult {
    let size = size_mib * 1024 * 1024;
    let server = serve::start(ServeOptions {
        pairing_ttl: Duration::from_secs(60),
        ..ServeOptions::new(([127, 0, 0, 1], 0).into(), dir.join("backend"))
    })
    .await?;
    print_line(&format!(
        "1. embedded Norman backend listening on {} (data in {})",
        server.base_url(),
        dir.display()
    ))?;
    let outcome = round_trip(dir, size, server.base_url()).await;
    server.shutdown().await?;
    outcome
}

async fn round_trip(dir: &Path, size: u64, base_url: &str) -> CliResult {
    let e = |e: norman::Error| e.to_string();
    let config =
        AppConfig { base_url: base_url.to_owned(), chunk_size: 1 << 20, ..AppConfig::from_env().map_err(e)? };
    let anonymous = HttpClient::new(&config).map_err(e)?;
    let login = anonymous.authenticate().signup_default().await.map_err(e)?;
    let (Some(account), Some(token)) = (login.account, login.access_token) else {
        return Err("signup returned no account or no token".into());
    };
    let http = anonymous.with_token(token.expose().clone());
    print_line(&format!("2. signed up: account {} (token held as a secret)", account.id))?;

    let model = Model::new(&account.id, "demo-model", "v1").with_asset("File");
    let model =
        http.persist().create_models(&[model]).await.map_err(e)?.into_iter().next().ok_or("no model")?;
    let asset_id = model.asset_id("File").ok_or("the model came back without its File asset")?.to_owned();
    print_line(&format!("3. created model {} ({}) with asset File ({asset_id})", model.name, model.id))?;

    let src = dir.join("model-weights.bin");
    crate::write_pseudo_random(&src, size).map_err(|err| format!("{}: {err}", src.display()))?;
    let (source_sum, _) = norman::checksum::checksum_file(&src).map_err(|err| err.to_string())?;
    print_line(&format!("4. generated {} MiB of weights, xxh3-64 {source_sum}", size >> 20))?;

    let target = UploadTarget::Asset {
        account_id: account.id.clone(),
        model_id: model.id.clone(),
        asset_id: asset_id.clone(),
    };
    let start = Instant::now();
    let pushed = Uploads::new(&http, &config).push_file(&target, &src, |_, _| {}).await.map_err(e)?;
    let secs = start.elapsed().as_secs_f64();
    print_line(&format!(
        "5. pushed {} bytes encrypted through the upload socket in {secs:.2} s ({:.0} MB/s), checksum {} accepted",
        pushed.bytes,
        pushed.bytes as f64 / secs / 1e6,
        pushed.checksum
    ))?;

    let flags = http.status_flags().get_flags_of(&[&model.id]).await.map_err(e)?;
    let model_flags = flags.get(&model.id).map(Vec::as_slice).unwrap_or(&[]);
    let state = norman::objects::entity_state(model_flags);
    print_line(&format!("6. model status flags: {state:?} ({} flags)", model_flags.len()))?;

    let out = dir.join("pulled.bin");
    let start = Instant::now();
    let source = FileTarget::from(target);
    let pulled = Downloads::new(&http).to_file(&source, &out, |_| {}).await.map_err(e)?;
    let (pulled, pulled_sum) = (pulled.bytes, pulled.checksum);
    let secs = start.elapsed().as_secs_f64();
    print_line(&format!(
        "7. pulled {pulled} bytes back in {secs:.2} s ({:.0} MB/s), xxh3-64 {pulled_sum}",
        pulled as f64 / secs / 1e6
    ))?;

    if pushed.checksum != source_sum || pulled_sum != source_sum || pulled != size {
        return Err("checksums disagree: the round trip is NOT verified".into());
    }
    print_line("verified: the file pulled back is byte-identical to the one pushed")
}
