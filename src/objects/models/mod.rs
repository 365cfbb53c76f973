//! Models, their versions and bases, signatures, parameters, assets and tags (`persist/models/*`).

mod bases;
mod signatures;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::objects::query::QueryConstraints;
use crate::objects::{default_id, default_true, now_rfc3339, null_as_default};

pub use bases::{ModelBase, ModelPreview};
pub use signatures::{
    DataModality, HttpLocation, ModelParam, ModelSignature, ReceiveFormat, SignatureTransform, SignatureType,
};

wire_enum! {
    /// Model.model_type.
    pub enum ModelType {
        Api => "Api",
        PytorchJit => "Pytorch_jit",
        TransformerHf => "Transformer_hf",
    }
}

wire_enum! {
    /// Model.hosting_location: whether Norman runs the model or calls it at `url`.
    pub enum ModelHostingLocation {
        External => "External",
        Internal => "Internal",
    }
}

wire_enum! {
    /// Model.output_format.
    pub enum OutputFormat {
        Binary => "Binary",
        Json => "Json",
        Text => "Text",
    }
}

wire_enum! {
    /// Model.request_type: the HTTP method used to call an external model.
    pub enum HttpRequestType {
        Get => "Get",
        Post => "Post",
        Put => "Put",
    }
}

wire_enum! {
    /// Model.build_status.
    pub enum ModelBuildStatus {
        InProgress => "InProgress",
        Completed => "Completed",
        Failed => "Failed",
    }
}

/// One version of a model, with its signatures and assets (schema `Model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Id of the model base that groups this model's versions.
    #[serde(default = "default_id")]
    pub model_base_id: String,
    /// This version's label (e.g. "v1").
    pub version_label: String,
    /// Whether this version is active.
    #[serde(default = "default_true")]
    pub active: bool,
    /// State of the model's build (`None`: no build).
    #[serde(default)]
    pub build_status: Option<ModelBuildStatus>,
    /// When the object was created (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    /// One-line description.
    pub short_description: String,
    /// Files of the model (their slots, by name).
    #[serde(default)]
    pub assets: Vec<ModelAsset>,
    /// Tags given to the model, with their counts.
    #[serde(default)]
    pub tags: Vec<AggregateTag>,
    /// The model's name.
    pub name: String,
    /// Required by the schema, but absent from Models of the earlier published API (PROTOCOL.md §5),
    /// so defaulted to "" to keep reading them.
    #[serde(default)]
    pub model_class: String,
    /// Endpoint of an external API model.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP method used to call the model.
    pub request_type: HttpRequestType,
    /// Kind of model.
    pub model_type: ModelType,
    /// Where the model runs.
    pub hosting_location: ModelHostingLocation,
    /// Format of the model's output.
    pub output_format: OutputFormat,
    /// Full description.
    pub long_description: String,
    /// The model's input signatures.
    #[serde(default)]
    pub inputs: Vec<ModelSignature>,
    /// The model's output signatures.
    #[serde(default)]
    pub outputs: Vec<ModelSignature>,
    /// Headers sent with each call to the model.
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
    /// Tags users added to the model.
    #[serde(default)]
    pub user_added_tags: Vec<ModelTag>,
}

impl Model {
    /// A model to create (ids "0": the backend assigns them): an external API model answering JSON
    /// to POST requests. Set the other fields as needed before creating it.
    pub fn new(
        account_id: impl Into<String>,
        name: impl Into<String>,
        version_label: impl Into<String>,
    ) -> Self {
        Model {
            id: default_id(),
            account_id: account_id.into(),
            model_base_id: default_id(),
            version_label: version_label.into(),
            active: true,
            build_status: None,
            creation_time: now_rfc3339(),
            short_description: String::new(),
            assets: Vec::new(),
            tags: Vec::new(),
            name: name.into(),
            model_class: String::new(),
            url: None,
            request_type: HttpRequestType::Post,
            model_type: ModelType::Api,
            hosting_location: ModelHostingLocation::External,
            output_format: OutputFormat::Json,
            long_description: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            http_headers: BTreeMap::new(),
            user_added_tags: Vec::new(),
        }
    }

    /// Adds an asset slot (e.g. "File", "Logo") to a model about to be created; the backend assigns
    /// its id, which uploads and retrieves then name.
    pub fn with_asset(mut self, asset_name: impl Into<String>) -> Self {
        let asset = ModelAsset {
            account_id: self.account_id.clone(),
            asset_name: asset_name.into(),
            ..ModelAsset::default()
        };
        self.assets.push(asset);
        self
    }

    /// The id of this model's asset named `asset_name`.
    pub fn asset_id(&self, asset_name: &str) -> Option<&str> {
        self.assets.iter().find(|a| a.asset_name == asset_name).map(|a| a.id.as_str())
    }
}

/// A file belonging to a model ("Logo", "File", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAsset {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    #[serde(default = "default_id")]
    pub model_id: String,
    /// Name of the asset slot (e.g. "File", "Logo").
    pub asset_name: String,
}

impl Default for ModelAsset {
    fn default() -> Self {
        ModelAsset {
            id: default_id(),
            account_id: String::new(),
            model_id: default_id(),
            asset_name: String::new(),
        }
    }
}

/// A tag with how many times it was given to a model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AggregateTag {
    /// Id of the model.
    pub model_id: String,
    /// The tag.
    pub name: String,
    /// How many times it was given.
    pub tag_count: i64,
}

/// A tag a user added to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTag {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    #[serde(default = "default_id")]
    pub account_id: String,
    /// Id of the model.
    #[serde(default = "default_id")]
    pub model_id: String,
    /// The tag.
    pub name: String,
}

impl Default for ModelTag {
    fn default() -> Self {
        ModelTag { id: default_id(), account_id: default_id(), model_id: default_id(), name: String::new() }
    }
}

/// Body of `persist/models/get` and `persist/models/bases/get`. `finished_models` restricts the
/// answer to models whose flags are all Finished. (The Python SDK sends `true` when the caller gives
/// no request at all; that choice belongs to the service, not to this default.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetModelsRequest {
    /// Filter, paging and sorting of the answer (`None`: everything).
    #[serde(default)]
    pub constraints: Option<QueryConstraints>,
    /// `Optional[bool] = False` in Python: `null` reads as false.
    #[serde(default, deserialize_with = "null_as_default")]
    pub finished_models: bool,
}
