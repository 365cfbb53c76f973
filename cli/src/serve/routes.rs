//! The route table: every route of both API generations, with the answer shape of each, in one place.
//!
//! - `/v0/`: the current API (PROTOCOL.md §2). `persist/models/` (POST, PATCH) and
//!   `persist/models/version` (POST) answer `[Model]` in request order; accounts are under
//!   `authenticate/accounts`; flags come from `persist/flags/get` (current numbering).
//! - `/legacy/v0/`: norman-core 0.1.0 (§5), on the same data. Those three model routes answer
//!   `{id: Model}`; accounts are under `persist/accounts`; flags come from the per-entity routes
//!   (`persist/{model,asset,invocation,input,output}/flags/get`, legacy numbering).
//!
//! Every other route is the same in both.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;

use super::auth::Auth;
use super::http::JsonBody;
use super::{accounts, auth, flags, http, invocations, models, pull, retrieve, store, uploads, AppState};

/// Which API generation a route belongs to, where their answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    Current,
    Legacy,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v0", current())
        .nest("/legacy/v0", legacy())
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .fallback(http::not_found)
        .with_state(state)
}

fn current() -> Router<AppState> {
    shared(Generation::Current)
        .route("/authenticate/accounts/get", post(accounts::get_accounts))
        .route("/authenticate/accounts", account_routes())
        .route("/persist/flags/get", post(flags::get_flags))
}

fn legacy() -> Router<AppState> {
    shared(Generation::Legacy)
        .route("/persist/accounts/get", post(accounts::get_accounts))
        .route("/persist/accounts", account_routes())
        .route("/persist/model/flags/get", flags::legacy("model"))
        .route("/persist/asset/flags/get", flags::legacy("asset"))
        .route("/persist/invocation/flags/get", flags::legacy("invocation"))
        .route("/persist/input/flags/get", flags::legacy("input"))
        .route("/persist/output/flags/get", flags::legacy("output"))
}

fn account_routes() -> MethodRouter<AppState> {
    post(accounts::create_accounts)
        .put(accounts::replace_accounts)
        .patch(accounts::update_accounts)
        .delete(accounts::delete_accounts)
}

/// POST/PATCH `persist/models/` and POST `persist/models/version`, answering in `generation`'s shape.
fn model_writes(generation: Generation) -> (MethodRouter<AppState>, MethodRouter<AppState>) {
    let models = post(move |State(s): State<AppState>, auth: Auth, JsonBody(body): JsonBody| {
        models::create_models(s, auth, body, generation)
    })
    .patch(move |State(s): State<AppState>, auth: Auth, JsonBody(body): JsonBody| {
        models::replace_models(s, auth, body, generation)
    })
    .delete(models::delete_models);
    let versions = post(move |State(s): State<AppState>, auth: Auth, JsonBody(body): JsonBody| {
        models::add_versions(s, auth, body, generation)
    })
    .patch(models::set_active);
    (models, versions)
}

/// The routes both generations serve alike, plus the model writes in `generation`'s shape.
fn shared(generation: Generation) -> Router<AppState> {
    let (model_routes, version_routes) = model_writes(generation);
    Router::new()
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
        // Persist.
        .route("/persist/models/get", post(models::get_models))
        .route("/persist/models/bases/get", post(models::get_bases))
        .route("/persist/models/", model_routes.clone())
        .route("/persist/models", model_routes)
        .route("/persist/models/version", version_routes)
        .route("/persist/invocations/get", post(invocations::get_invocations))
        .route("/persist/invocation/history/get", post(invocations::get_invocations))
        .route("/persist/invocations", post(invocations::create_invocations))
        .route("/persist/invocations/by-name", post(invocations::create_by_name))
        .route("/persist/notifications/get", post(invocations::get_notifications))
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
        .route("/retrieve/output/{account_id}/{model_id}/{invocation_id}/{output_id}", get(retrieve::output))
}
