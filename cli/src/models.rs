//! `norman models create|list` and `norman status`: the models of the logged-in account and where
//! an entity (model, asset, invocation, input, output) stands, through the library's services.

use std::collections::HashMap;
use std::process::ExitCode;

use norman::http::HttpClient;
use norman::objects::{entity_state, EntityState, GetModelsRequest, Model, StatusFlag};
use serde_json::json;

use crate::account::client_from_env;
use crate::{print_line, runtime, CliResult};

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Create a model (an external API model answering JSON) with the named asset slots; prints its
    /// id and, for each asset, the ACCOUNT/MODEL/ASSET that `norman push --asset` takes.
    Create {
        name: String,
        /// An asset slot to create (repeat: --asset File --asset Logo).
        #[arg(long = "asset", value_name = "NAME")]
        assets: Vec<String>,
        /// The version label.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Print the created model as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the account's models: id, name, version and assets.
    List {
        /// Print the models as a JSON list.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Ids of models, assets, invocations, inputs or outputs.
    #[arg(required = true, value_name = "ENTITY_ID")]
    ids: Vec<String>,
    /// Print a JSON list of {entity_id, state, flags}.
    #[arg(long)]
    json: bool,
}

/// What `persist/models*` answered, whichever shape the client gives it in (a map by id from the
/// original API, a list from /v0/): the models in a stable order.
trait IntoModels {
    fn into_models(self) -> Vec<Model>;
}

impl IntoModels for HashMap<String, Model> {
    fn into_models(self) -> Vec<Model> {
        self.into_values().collect()
    }
}

impl IntoModels for Vec<Model> {
    fn into_models(self) -> Vec<Model> {
        self
    }
}

fn err(e: norman::Error) -> String {
    e.to_string()
}

pub fn models(command: ModelsCommand) -> CliResult {
    let (_, http) = client_from_env()?;
    let rt = runtime()?;
    match command {
        ModelsCommand::Create { name, assets, version, json } => {
            let account_id = rt.block_on(own_account_id(&http))?;
            let mut model = Model::new(&account_id, &name, &version);
            for asset in &assets {
                model = model.with_asset(asset);
            }
            let created = rt.block_on(http.persist().create_models(&[model])).map_err(err)?.into_models();
            let [model] = <[Model; 1]>::try_from(created)
                .map_err(|got| format!("the backend answered {} models for one created", got.len()))?;
            if json {
                return print_line(&serde_json::to_string(&model).map_err(|e| e.to_string())?);
            }
            let mut out = format!("model {}  {}  {}", model.id, model.name, model.version_label);
            for asset in &model.assets {
                out.push_str(&format!(
                    "\nasset {}  {}/{}/{}",
                    asset.asset_name, model.account_id, model.id, asset.id
                ));
            }
            print_line(&out)
        }
        ModelsCommand::List { json } => {
            let request = GetModelsRequest::default();
            let mut models = rt.block_on(http.persist().get_models(&request)).map_err(err)?.into_models();
            models
                .sort_by(|a, b| (&a.name, &a.version_label, &a.id).cmp(&(&b.name, &b.version_label, &b.id)));
            if json {
                return print_line(&serde_json::to_string(&models).map_err(|e| e.to_string())?);
            }
            if models.is_empty() {
                return print_line("no models");
            }
            let mut out = String::new();
            for m in &models {
                let assets: Vec<String> =
                    m.assets.iter().map(|a| format!("{}={}", a.asset_name, a.id)).collect();
                out.push_str(&format!(
                    "{}  {}  {}  [{}]\n",
                    m.id,
                    m.name,
                    m.version_label,
                    assets.join(", ")
                ));
            }
            print_line(out.trim_end())
        }
    }
}

/// The account the token belongs to (`authenticate/accounts/get` shows a token its own account).
async fn own_account_id(http: &HttpClient) -> CliResult<String> {
    let accounts = http.authenticate().get_accounts(None).await.map_err(err)?;
    let mut ids = accounts.into_values().map(|a| a.id);
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err("the backend shows this token no account".into()),
        (Some(_), Some(_)) => Err("the backend shows this token several accounts".into()),
    }
}

fn state_name(state: EntityState) -> &'static str {
    match state {
        EntityState::Done => "done",
        EntityState::Failed => "failed",
        EntityState::Pending => "pending",
    }
}

pub fn status(args: StatusArgs) -> CliResult {
    let (_, http) = client_from_env()?;
    let ids: Vec<&str> = args.ids.iter().map(String::as_str).collect();
    let mut flags = runtime()?.block_on(http.status_flags().get_flags_of(&ids)).map_err(err)?;
    let entities: Vec<(&str, Vec<StatusFlag>, EntityState)> = ids
        .iter()
        .map(|id| {
            let mut list = flags.remove(*id).unwrap_or_default();
            list.sort_by(|a, b| a.flag_name.as_str().cmp(b.flag_name.as_str()));
            let state = entity_state(&list);
            (*id, list, state)
        })
        .collect();
    if args.json {
        let list: Vec<_> = entities
            .iter()
            .map(|(id, flags, state)| json!({ "entity_id": id, "state": state_name(*state), "flags": flags }))
            .collect();
        return print_line(&serde_json::Value::Array(list).to_string());
    }
    let mut out = String::new();
    for (id, flags, state) in &entities {
        let note = if flags.is_empty() { "  (no flags yet)" } else { "" };
        out.push_str(&format!("{id}  {}{note}\n", state_name(*state)));
        for flag in flags {
            out.push_str(&format!(
                "  {}  {:?}  {}\n",
                flag.flag_name.as_str(),
                flag.flag_value,
                flag.update_time
            ));
        }
    }
    print_line(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// `norman completions SHELL`: the shell's completion script for every command, on stdout.
pub fn completions(shell: clap_complete::Shell) -> CliResult {
    use clap::CommandFactory;
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::Cli::command(), "norman", &mut script);
    std::io::stdout().write_all(&script).map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
