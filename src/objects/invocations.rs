//! Invocations (one run of a model, with its inputs and outputs) and notifications.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{default_id, now_rfc3339};

/// One run of a model (`persist/invocations*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// The invocation's inputs.
    #[serde(default)]
    pub inputs: Vec<InvocationSignature>,
    /// The invocation's outputs.
    #[serde(default)]
    pub outputs: Vec<InvocationSignature>,
}

impl Invocation {
    /// A new invocation of `model_id` (id "0": the backend assigns one).
    pub fn new(account_id: impl Into<String>, model_id: impl Into<String>) -> Self {
        Invocation { account_id: account_id.into(), model_id: model_id.into(), ..Self::default() }
    }
}

impl Default for Invocation {
    fn default() -> Self {
        Invocation {
            id: default_id(),
            account_id: String::new(),
            model_id: String::new(),
            creation_time: now_rfc3339(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

/// One input or output value of an invocation, bound to a model signature (`signature_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationSignature {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// Id of the model signature (input or output slot).
    pub signature_id: String,
    /// Id of the invocation.
    #[serde(default = "default_id")]
    pub invocation_id: String,
    /// Title shown for this input or output.
    #[serde(default)]
    pub display_title: String,
}

impl Default for InvocationSignature {
    fn default() -> Self {
        InvocationSignature {
            id: default_id(),
            account_id: String::new(),
            model_id: String::new(),
            signature_id: String::new(),
            invocation_id: default_id(),
            display_title: String::new(),
        }
    }
}

/// An item of `persist/notifications/get` (`[Notification]`). Not in the schema, and its fields have
/// changed between published versions (0.1.0: entity_id, model_name, title, message, read_status,
/// severity), so only the common three are typed; everything else is kept in `extra`, unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Inferred type: defaulted rather than required.
    #[serde(default)]
    pub account_id: String,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Notification {
    fn default() -> Self {
        Notification {
            id: default_id(),
            account_id: String::new(),
            creation_time: now_rfc3339(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TIME: &str = "2025-09-15T12:00:00.123456Z";

    #[test]
    fn invocation_round_trips() {
        let wire = json!({
            "id": "i1", "account_id": "a1", "model_id": "m1", "creation_time": TIME,
            "inputs": [{"id": "in1", "account_id": "a1", "model_id": "m1", "signature_id": "s1",
                        "invocation_id": "i1", "display_title": "Prompt"}],
            "outputs": [{"id": "out1", "account_id": "a1", "model_id": "m1", "signature_id": "s2",
                         "invocation_id": "i1", "display_title": ""}]
        });
        let invocation: Invocation = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(invocation.inputs[0].display_title, "Prompt");
        assert_eq!(serde_json::to_value(&invocation).unwrap(), wire);
    }

    #[test]
    fn invocation_defaults_and_required_fields() {
        let invocation: Invocation =
            serde_json::from_value(json!({"account_id": "a1", "model_id": "m1", "status": "new-field"}))
                .unwrap();
        assert_eq!(invocation.id, "0");
        assert!(invocation.inputs.is_empty() && invocation.outputs.is_empty());
        let signature: InvocationSignature =
            serde_json::from_value(json!({"account_id": "a1", "model_id": "m1", "signature_id": "s1"}))
                .unwrap();
        assert_eq!(
            signature,
            InvocationSignature {
                account_id: "a1".into(),
                model_id: "m1".into(),
                signature_id: "s1".into(),
                ..Default::default()
            }
        );
        assert!(serde_json::from_value::<Invocation>(json!({"account_id": "a1"})).is_err());
        assert!(serde_json::from_value::<InvocationSignature>(json!({"account_id": "a1", "model_id": "m1"}))
            .is_err());
        let new = Invocation::new("a1", "m1");
        assert_eq!((new.id.as_str(), new.model_id.as_str()), ("0", "m1"));
    }

    #[test]
    fn notification_keeps_every_field() {
        let wire = json!({
            "id": "n1", "account_id": "a1", "entity_id": "i1", "creation_time": TIME, "model_name": null,
            "title": "Done", "message": "Your invocation finished", "read_status": 0, "severity": "Success"
        });
        let notification: Notification = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(notification.id, "n1");
        assert_eq!(notification.extra["severity"], json!("Success"));
        assert_eq!(notification.extra["model_name"], Value::Null);
        assert_eq!(serde_json::to_value(&notification).unwrap(), wire);
        let list: Vec<Notification> = serde_json::from_str(r#"[{"id":"n2"}]"#).unwrap();
        assert_eq!(list[0].account_id, "");
    }
}
