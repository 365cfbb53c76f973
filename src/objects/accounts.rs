//! Accounts and the bodies of the `authenticate/*` routes (PROTOCOL.md §2).
//!
//! Secrets (`password`, `api_key`, `second_token`, `code`, the tokens of LoginResponse) are
//! `Sensitive<String>`: `Debug` prints `<redacted>`; they reach the wire only through
//! [`super::secret`], field by field. These types have no `PartialEq` because `Sensitive` has none.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::query::QueryConstraints;
use super::{default_id, now_rfc3339};
use crate::sensitive::Sensitive;

/// `{id, creation_time, name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// The account's name.
    pub name: String,
}

impl Account {
    /// A new account (id "0": the backend assigns one).
    pub fn new(name: impl Into<String>) -> Self {
        Account { name: name.into(), ..Self::default() }
    }
}

impl Default for Account {
    fn default() -> Self {
        Account { id: default_id(), creation_time: now_rfc3339(), name: String::new() }
    }
}

/// What every login and some signup routes return. `login/default` answers without a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The account logged in (absent when the route gives none).
    #[serde(default)]
    pub account: Option<Account>,
    /// Bearer token for the following requests (redacted in `Debug`).
    #[serde(default, with = "super::secret::option")]
    pub access_token: Option<Sensitive<String>>,
    /// Identity token, when the backend issues one (redacted in `Debug`).
    #[serde(default, with = "super::secret::option")]
    pub id_token: Option<Sensitive<String>>,
}

/// POST `authenticate/login/key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyLoginRequest {
    /// The key names its account: a backend may accept a request without this ("" when absent).
    #[serde(default)]
    pub account_id: String,
    /// The API key (redacted in `Debug`).
    #[serde(with = "super::secret")]
    pub api_key: Sensitive<String>,
}

/// POST `authenticate/login/password/account_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountIdPasswordLoginRequest {
    /// Id of the account.
    pub account_id: String,
    /// The account's password (redacted in `Debug`).
    #[serde(with = "super::secret")]
    pub password: Sensitive<String>,
}

/// POST `authenticate/login/password/name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamePasswordLoginRequest {
    /// The account's name.
    pub name: String,
    /// The account's password (redacted in `Debug`).
    #[serde(with = "super::secret")]
    pub password: Sensitive<String>,
}

/// POST `authenticate/login/password/email`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailPasswordLoginRequest {
    /// The account's email address.
    pub email: String,
    /// The account's password (redacted in `Debug`).
    #[serde(with = "super::secret")]
    pub password: Sensitive<String>,
}

/// POST `authenticate/login/email/otp`: asks for a one-time code by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailOtpLoginRequest {
    /// The account's email address.
    pub email: String,
}

/// POST `authenticate/login/email/otp/verify`: the code received by email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailOtpVerificationRequest {
    /// The account's email address.
    pub email: String,
    /// The one-time code (redacted in `Debug`).
    #[serde(with = "super::secret")]
    pub code: Sensitive<String>,
}

/// POST `authenticate/generate/key` (Python: `RegisterAuthFactorRequest`). `second_token` is optional
/// in the Python model (`None` by default), so it is here too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterAuthFactorRequest {
    /// Id of the account.
    pub account_id: String,
    /// Second factor token, if any (redacted in `Debug`).
    #[serde(default, with = "super::secret::option")]
    pub second_token: Option<Sensitive<String>>,
}

impl ApiKeyLoginRequest {
    /// A login with `api_key` for `account_id`.
    pub fn new(account_id: impl Into<String>, api_key: impl Into<Sensitive<String>>) -> Self {
        ApiKeyLoginRequest { account_id: account_id.into(), api_key: api_key.into() }
    }
}

impl AccountIdPasswordLoginRequest {
    /// A login with the account id and password.
    pub fn new(account_id: impl Into<String>, password: impl Into<Sensitive<String>>) -> Self {
        AccountIdPasswordLoginRequest { account_id: account_id.into(), password: password.into() }
    }
}

impl NamePasswordLoginRequest {
    /// A login with the account name and password.
    pub fn new(name: impl Into<String>, password: impl Into<Sensitive<String>>) -> Self {
        NamePasswordLoginRequest { name: name.into(), password: password.into() }
    }
}

impl EmailPasswordLoginRequest {
    /// A login with the email address and password.
    pub fn new(email: impl Into<String>, password: impl Into<Sensitive<String>>) -> Self {
        EmailPasswordLoginRequest { email: email.into(), password: password.into() }
    }
}

impl EmailOtpVerificationRequest {
    /// Verification of the `code` sent to `email`.
    pub fn new(email: impl Into<String>, code: impl Into<Sensitive<String>>) -> Self {
        EmailOtpVerificationRequest { email: email.into(), code: code.into() }
    }
}

impl RegisterAuthFactorRequest {
    /// A new API key for `account_id`, with the second factor if any.
    pub fn new(account_id: impl Into<String>, second_token: Option<Sensitive<String>>) -> Self {
        RegisterAuthFactorRequest { account_id: account_id.into(), second_token }
    }
}

/// GET `authenticate/register/get/authentication/factors/{account_id}`. Not in the schema, and the
/// published Python versions name the counters differently (`api_key_count`, `api_keys`,
/// `api_keys_count`, ...), so only `account_id` is typed and every other field is kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountAuthenticationMethods {
    /// Inferred type: defaulted rather than required.
    #[serde(default)]
    pub account_id: String,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields of an Account to change (Python's `Account.UpdateSchema`: every field optional). Only the
/// keys set here are sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// The fields to change, by wire name.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl AccountUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one field, e.g. `AccountUpdate::new().set("name", "new name")`.
    pub fn set(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(field.into(), value.into());
        self
    }
}

/// PATCH `authenticate/accounts` (and the earlier `persist/accounts`): `{account, constraints}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateAccountsRequest {
    /// The fields to change.
    pub account: AccountUpdate,
    /// Which accounts to change (`None`: no constraint).
    #[serde(default)]
    pub constraints: Option<QueryConstraints>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TIME: &str = "2025-09-15T12:00:00.123456Z";

    #[test]
    fn account_round_trips_and_defaults() {
        let wire = json!({"id": "a1", "creation_time": TIME, "name": "alice"});
        let account: Account = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(account, Account { id: "a1".into(), creation_time: TIME.into(), name: "alice".into() });
        assert_eq!(serde_json::to_value(&account).unwrap(), wire);

        let minimal: Account = serde_json::from_value(json!({"name": "bob", "new_field": 1})).unwrap();
        assert_eq!(minimal.id, "0");
        assert!(minimal.creation_time.ends_with('Z'));
        assert!(serde_json::from_value::<Account>(json!({"id": "a1"})).is_err(), "name is required");

        let new = Account::new("carol");
        assert_eq!((new.id.as_str(), new.name.as_str()), ("0", "carol"));
    }

    #[test]
    fn login_response_round_trips_with_tokens_on_the_wire() {
        let wire = json!({
            "account": {"id": "a1", "creation_time": TIME, "name": "alice"},
            "access_token": "access-secret-123",
            "id_token": "id-secret-456",
            "refresh_token": "ignored"
        });
        let response: LoginResponse = serde_json::from_value(wire).unwrap();
        assert_eq!(response.access_token.as_ref().unwrap().expose(), "access-secret-123");
        assert_eq!(response.id_token.as_ref().unwrap().expose(), "id-secret-456");
        assert_eq!(response.account.as_ref().unwrap().name, "alice");
        let out = serde_json::to_value(&response).unwrap();
        assert_eq!(out["access_token"], json!("access-secret-123"));
        assert_eq!(out["id_token"], json!("id-secret-456"));
        assert!(out.get("refresh_token").is_none());
    }

    #[test]
    fn login_response_without_token_is_all_null() {
        let response: LoginResponse = serde_json::from_str("{}").unwrap();
        assert!(response.account.is_none() && response.access_token.is_none() && response.id_token.is_none());
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"account":null,"access_token":null,"id_token":null}"#
        );
        let explicit: LoginResponse =
            serde_json::from_str(r#"{"account":null,"access_token":null,"id_token":null}"#).unwrap();
        assert!(explicit.access_token.is_none());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let response: LoginResponse = serde_json::from_value(json!({
            "account": {"name": "alice"}, "access_token": "access-secret-123", "id_token": "id-secret-456"
        }))
        .unwrap();
        let printed = format!("{response:?} {response:#?}");
        assert!(!printed.contains("access-secret-123") && !printed.contains("id-secret-456"), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("alice"));

        let login = AccountIdPasswordLoginRequest::new("a1", String::from("hunter2-password"));
        let printed = format!("{login:?} {login:#?}");
        assert!(!printed.contains("hunter2-password"), "{printed}");
        assert!(printed.contains("a1"));

        let others = [
            format!("{:?}", ApiKeyLoginRequest::new("a1", String::from("key-secret"))),
            format!("{:?}", NamePasswordLoginRequest::new("alice", String::from("pw-secret"))),
            format!("{:?}", EmailPasswordLoginRequest::new("a@b.c", String::from("pw-secret"))),
            format!("{:?}", EmailOtpVerificationRequest::new("a@b.c", String::from("code-secret"))),
            format!("{:?}", RegisterAuthFactorRequest::new("a1", Some(String::from("second-secret").into()))),
        ];
        for printed in others {
            assert!(!printed.contains("secret"), "{printed}");
        }
    }

    #[test]
    fn request_bodies_carry_their_secrets_on_the_wire() {
        let cases = [
            (
                serde_json::to_value(AccountIdPasswordLoginRequest::new("a1", String::from("pw"))).unwrap(),
                json!({"account_id": "a1", "password": "pw"}),
            ),
            (
                serde_json::to_value(NamePasswordLoginRequest::new("alice", String::from("pw"))).unwrap(),
                json!({"name": "alice", "password": "pw"}),
            ),
            (
                serde_json::to_value(EmailPasswordLoginRequest::new("a@b.c", String::from("pw"))).unwrap(),
                json!({"email": "a@b.c", "password": "pw"}),
            ),
            (
                serde_json::to_value(ApiKeyLoginRequest::new("a1", String::from("k"))).unwrap(),
                json!({"account_id": "a1", "api_key": "k"}),
            ),
            (
                serde_json::to_value(EmailOtpLoginRequest { email: "a@b.c".into() }).unwrap(),
                json!({"email": "a@b.c"}),
            ),
            (
                serde_json::to_value(EmailOtpVerificationRequest::new("a@b.c", String::from("123456")))
                    .unwrap(),
                json!({"email": "a@b.c", "code": "123456"}),
            ),
            (
                serde_json::to_value(RegisterAuthFactorRequest::new("a1", Some(String::from("t2").into())))
                    .unwrap(),
                json!({"account_id": "a1", "second_token": "t2"}),
            ),
            (
                serde_json::to_value(RegisterAuthFactorRequest::new("a1", None)).unwrap(),
                json!({"account_id": "a1", "second_token": null}),
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn request_bodies_deserialize_into_sensitive() {
        let login: EmailPasswordLoginRequest =
            serde_json::from_value(json!({"email": "a@b.c", "password": "pw", "extra": 1})).unwrap();
        assert_eq!(login.password.expose(), "pw");
        let key: ApiKeyLoginRequest =
            serde_json::from_value(json!({"account_id": "a1", "api_key": "k"})).unwrap();
        assert_eq!(key.api_key.expose(), "k");
        let verify: EmailOtpVerificationRequest =
            serde_json::from_value(json!({"email": "a@b.c", "code": "42"})).unwrap();
        assert_eq!(verify.code.expose(), "42");
        let generate: RegisterAuthFactorRequest =
            serde_json::from_value(json!({"account_id": "a1"})).unwrap();
        assert!(generate.second_token.is_none());
        assert!(serde_json::from_value::<AccountIdPasswordLoginRequest>(json!({"account_id": "a1"})).is_err());
    }

    #[test]
    fn authentication_methods_keep_every_field() {
        let wire =
            json!({"account_id": "a1", "api_key_count": 2, "password_count": 1, "verified_email_count": 0});
        let methods: AccountAuthenticationMethods = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(methods.account_id, "a1");
        assert_eq!(methods.extra["api_key_count"], json!(2));
        assert_eq!(serde_json::to_value(&methods).unwrap(), wire);
    }

    #[test]
    fn account_update_sends_only_what_is_set() {
        let request = UpdateAccountsRequest {
            account: AccountUpdate::new().set("name", "new name"),
            constraints: Some(QueryConstraints::equals("Accounts", "ID", "a1")),
        };
        let out = serde_json::to_value(&request).unwrap();
        assert_eq!(out["account"], json!({"name": "new name"}));
        assert_eq!(out["constraints"]["filter"]["children"][0]["value"], json!("a1"));
        let back: UpdateAccountsRequest = serde_json::from_value(out).unwrap();
        assert_eq!(back, request);

        let no_constraints = UpdateAccountsRequest { account: AccountUpdate::new(), constraints: None };
        assert_eq!(serde_json::to_string(&no_constraints).unwrap(), r#"{"account":{},"constraints":null}"#);
    }
}
