//! Model bases and the previews of their versions (not in the schema: see each type).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ModelAsset;
use crate::objects::{default_id, default_true, now_rfc3339};

/// One version of a model as listed under its base, and the body of PATCH `persist/models/version`
/// (which sets the active version).
///
/// Not in the schema: inferred from PROTOCOL.md §5 and the published Python objects (norman-core
/// 0.1.0's `ModelPreview`: id, account_id, model_base_id, version_label, active, creation_time,
/// short_description, assets). Every field is defaulted, and fields of other versions are kept in
/// `extra` so that a preview read from the server is sent back whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPreview {
    /// The model (version) id.
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    #[serde(default)]
    pub account_id: String,
    /// Id of the model base this version belongs to.
    #[serde(default = "default_id")]
    pub model_base_id: String,
    /// This version's label.
    #[serde(default)]
    pub version_label: String,
    /// Whether this version is active.
    #[serde(default = "default_true")]
    pub active: bool,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// One-line description.
    #[serde(default)]
    pub short_description: String,
    /// Files of the model.
    #[serde(default)]
    pub assets: Vec<ModelAsset>,
    /// Fields of other versions, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ModelPreview {
    fn default() -> Self {
        ModelPreview {
            id: default_id(),
            account_id: String::new(),
            model_base_id: default_id(),
            version_label: String::new(),
            active: true,
            creation_time: now_rfc3339(),
            short_description: String::new(),
            assets: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// A model base: the versions of one model (`persist/models/bases/get` answers `{id: ModelBase}`).
///
/// Not in the schema: inferred from PROTOCOL.md §5 and the published Python objects (0.1.0: id,
/// account_id, name, invocation_count, model_previews; later versions add creation_time). Every field
/// is defaulted; fields of other versions are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelBase {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    #[serde(default)]
    pub account_id: String,
    /// The model's name.
    #[serde(default)]
    pub name: String,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// How many times the model was invoked.
    #[serde(default)]
    pub invocation_count: i64,
    /// The versions of the model.
    #[serde(default)]
    pub model_previews: Vec<ModelPreview>,
    /// Fields of other versions, as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for ModelBase {
    fn default() -> Self {
        ModelBase {
            id: default_id(),
            account_id: String::new(),
            name: String::new(),
            creation_time: now_rfc3339(),
            invocation_count: 0,
            model_previews: Vec::new(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::models::tests::TIME;
    use serde_json::json;

    #[test]
    fn model_bases_and_previews_round_trip() {
        // The 0.1.0 shape (no creation_time on the base) plus a field of a later version.
        let wire = json!({
            "id": "b1", "account_id": "a1", "name": "resnet", "invocation_count": 7, "category": "vision",
            "model_previews": [{
                "id": "m1", "account_id": "a1", "model_base_id": "b1", "version_label": "v1",
                "active": false, "creation_time": TIME, "short_description": "s", "assets": [],
                "tags": [{"model_id": "m1", "name": "t", "tag_count": 1}]
            }]
        });
        let base: ModelBase = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(base.invocation_count, 7);
        assert_eq!(base.extra["category"], json!("vision"));
        let preview = &base.model_previews[0];
        assert!(!preview.active);
        assert_eq!(preview.extra["tags"][0]["tag_count"], json!(1));
        let mut out = serde_json::to_value(&base).unwrap();
        assert!(out["creation_time"].as_str().unwrap().ends_with('Z'));
        out.as_object_mut().unwrap().remove("creation_time");
        assert_eq!(out, wire);

        let minimal: ModelPreview =
            serde_json::from_value(json!({"id": "m2", "version_label": "v2"})).unwrap();
        assert!(minimal.active);
        assert_eq!(minimal.model_base_id, "0");
        let defaulted = ModelPreview { id: "m2".into(), version_label: "v2".into(), ..Default::default() };
        assert_eq!(
            ModelPreview { creation_time: String::new(), ..minimal },
            ModelPreview { creation_time: String::new(), ..defaulted }
        );
    }
}
