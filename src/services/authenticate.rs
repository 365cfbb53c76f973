use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};

use super::segment;
use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{
    Account, AccountAuthenticationMethods, AccountIdPasswordLoginRequest, ApiKeyLoginRequest,
    EmailOtpLoginRequest, EmailOtpVerificationRequest, EmailPasswordLoginRequest, LoginResponse,
    NamePasswordLoginRequest, QueryConstraints, RegisterAuthFactorRequest, UpdateAccountsRequest,
};
use crate::sensitive::Sensitive;

/// Login, signup, second factors, and accounts.
///
/// ```no_run
/// use norman::objects::ApiKeyLoginRequest;
/// # async fn demo() -> norman::Result<()> {
/// let http = norman::http::HttpClient::new(&norman::AppConfig::from_env()?)?;
/// let login = http.authenticate().login_with_key(&ApiKeyLoginRequest::new("account-1", String::from("api-key"))).await?;
/// if let Some(token) = &login.access_token {
///     // Later requests carry the token.
///     let http = http.with_token(token.expose().as_str());
///     assert!(http.has_token());
/// }
/// # Ok(())
/// # }
/// ```
pub struct Authenticate<'a> {
    pub(super) http: &'a HttpClient,
}

impl Authenticate<'_> {
    /// `POST authenticate/login/default/{account_id}` (accounts without credentials).
    pub async fn login_default(&self, account_id: &str) -> Result<LoginResponse> {
        let route = format!("authenticate/login/default/{}", segment(account_id));
        self.http.json(Method::POST, &route, None::<&()>).await
    }

    /// `POST authenticate/login/key`.
    pub async fn login_with_key(&self, request: &ApiKeyLoginRequest) -> Result<LoginResponse> {
        self.http.json(Method::POST, "authenticate/login/key", Some(request)).await
    }

    /// `POST authenticate/login/password/account_id`.
    pub async fn login_password_account_id(
        &self,
        request: &AccountIdPasswordLoginRequest,
    ) -> Result<LoginResponse> {
        self.http.json(Method::POST, "authenticate/login/password/account_id", Some(request)).await
    }

    /// `POST authenticate/login/password/name`.
    pub async fn login_password_name(&self, request: &NamePasswordLoginRequest) -> Result<LoginResponse> {
        self.http.json(Method::POST, "authenticate/login/password/name", Some(request)).await
    }

    /// `POST authenticate/login/password/email`.
    pub async fn login_password_email(&self, request: &EmailPasswordLoginRequest) -> Result<LoginResponse> {
        self.http.json(Method::POST, "authenticate/login/password/email", Some(request)).await
    }

    /// `POST authenticate/login/email/otp`: asks for a one-time code by email.
    pub async fn login_email_otp(&self, request: &EmailOtpLoginRequest) -> Result<()> {
        self.http.bytes(Method::POST, "authenticate/login/email/otp", Some(request)).await.map(drop)
    }

    /// `POST authenticate/login/email/otp/verify`.
    pub async fn verify_email_otp(&self, request: &EmailOtpVerificationRequest) -> Result<LoginResponse> {
        self.http.json(Method::POST, "authenticate/login/email/otp/verify", Some(request)).await
    }

    /// `PUT authenticate/signup/default`: a new account without credentials, logged in.
    pub async fn signup_default(&self) -> Result<LoginResponse> {
        self.http.json(Method::PUT, "authenticate/signup/default", None::<&()>).await
    }

    /// `PUT authenticate/signup/key` {name}: a new account that logs in with API keys. Returns the
    /// login and, when the backend issues one with the account, its first API key.
    pub async fn signup_with_key(&self, name: &str) -> Result<(LoginResponse, Option<Sensitive<String>>)> {
        let mut answer: Value =
            self.http.json(Method::PUT, "authenticate/signup/key", Some(&json!({ "name": name }))).await?;
        let api_key =
            answer.get_mut("api_key").and_then(|k| k.as_str().map(|k| Sensitive::new(k.to_owned())));
        let login = serde_json::from_value(answer).map_err(|e| crate::Error::Decode {
            what: "signup/key response".into(),
            message: e.to_string(),
        })?;
        Ok((login, api_key))
    }

    /// `PUT authenticate/signup/password` {name, password}.
    pub async fn signup_with_password(&self, name: &str, password: &Sensitive<String>) -> Result<Account> {
        let body = json!({ "name": name, "password": password.expose() });
        self.http.json(Method::PUT, "authenticate/signup/password", Some(&body)).await
    }

    /// `PUT authenticate/signup/email` {name, email}.
    pub async fn signup_with_email(&self, name: &str, email: &str) -> Result<Account> {
        let body = json!({ "name": name, "email": email });
        self.http.json(Method::PUT, "authenticate/signup/email", Some(&body)).await
    }

    /// `GET authenticate/register/get/authentication/factors/{account_id}`.
    pub async fn get_authentication_factors(&self, account_id: &str) -> Result<AccountAuthenticationMethods> {
        let route = format!("authenticate/register/get/authentication/factors/{}", segment(account_id));
        self.http.json(Method::GET, &route, None::<&()>).await
    }

    /// `POST authenticate/generate/key`: a new API key, as the raw JSON the backend returns.
    pub async fn generate_api_key(&self, request: &RegisterAuthFactorRequest) -> Result<Value> {
        self.http.json(Method::POST, "authenticate/generate/key", Some(request)).await
    }

    /// `POST authenticate/register/password` {account_id, second_token, password}.
    pub async fn register_password(
        &self,
        account_id: &str,
        second_token: Option<&Sensitive<String>>,
        password: &Sensitive<String>,
    ) -> Result<Value> {
        let body = json!({
            "account_id": account_id,
            "second_token": second_token.map(|t| t.expose().as_str()),
            "password": password.expose(),
        });
        self.http.json(Method::POST, "authenticate/register/password", Some(&body)).await
    }

    /// `POST authenticate/register/email` {account_id, second_token, email}.
    pub async fn register_email(
        &self,
        account_id: &str,
        second_token: Option<&Sensitive<String>>,
        email: &str,
    ) -> Result<Value> {
        let body = json!({
            "account_id": account_id,
            "second_token": second_token.map(|t| t.expose().as_str()),
            "email": email,
        });
        self.http.json(Method::POST, "authenticate/register/email", Some(&body)).await
    }

    /// `POST authenticate/register/email/verify/{email}/{code}`.
    pub async fn verify_email_registration(&self, email: &str, code: &Sensitive<String>) -> Result<Value> {
        let route =
            format!("authenticate/register/email/verify/{}/{}", segment(email), segment(code.expose()));
        self.http.json(Method::POST, &route, None::<&()>).await
    }

    /// `POST authenticate/register/email/resend/otp` {email}.
    pub async fn resend_email_otp(&self, email: &str) -> Result<Value> {
        self.http
            .json(Method::POST, "authenticate/register/email/resend/otp", Some(&json!({ "email": email })))
            .await
    }

    /// `POST authenticate/accounts/get`: accounts by id.
    pub async fn get_accounts(
        &self,
        constraints: Option<&QueryConstraints>,
    ) -> Result<HashMap<String, Account>> {
        self.http.json(Method::POST, "authenticate/accounts/get", constraints).await
    }

    /// `POST authenticate/accounts`: creates accounts.
    pub async fn create_accounts(&self, accounts: &[Account]) -> Result<Vec<Account>> {
        self.http.json(Method::POST, "authenticate/accounts", Some(accounts)).await
    }

    /// `PUT authenticate/accounts`: replaces accounts; returns how many.
    pub async fn replace_accounts(&self, accounts: &[Account]) -> Result<i64> {
        self.http.json(Method::PUT, "authenticate/accounts", Some(accounts)).await
    }

    /// `PATCH authenticate/accounts`: updates the accounts matching the constraints; returns how many.
    pub async fn update_accounts(&self, request: &UpdateAccountsRequest) -> Result<i64> {
        self.http.json(Method::PATCH, "authenticate/accounts", Some(request)).await
    }
}
