//! Serde helpers for secrets in request and response bodies (passwords, API keys, tokens).
//!
//! `Sensitive` deliberately implements no serde trait, so that a secret is never serialized by
//! accident. The few fields whose secret must travel on the wire opt in one by one with
//! `#[serde(with = "crate::objects::secret")]` (or `secret::option` for an `Option`): that writes the
//! exposed value, as the Python SDK does for `Sensitive[str]` in JSON mode, and reads into `Sensitive`.

use serde::{Deserialize, Deserializer, Serializer};

use crate::sensitive::Sensitive;

/// Writes the exposed value of the secret (serde `with`).
pub fn serialize<S: Serializer>(value: &Sensitive<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.expose())
}

/// Reads a string into `Sensitive`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Sensitive<String>, D::Error> {
    String::deserialize(deserializer).map(Sensitive::new)
}

/// The same for `Option<Sensitive<String>>` (`null` when absent). Pair it with `#[serde(default)]`.
pub mod option {
    use super::*;

    /// Writes the exposed value, or `null`.
    pub fn serialize<S: Serializer>(
        value: &Option<Sensitive<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_some(secret.expose()),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Sensitive<String>>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(Sensitive::new))
    }
}
