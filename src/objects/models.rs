//! Models, their versions and bases, signatures, parameters, assets and tags (`persist/models/*`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::query::QueryConstraints;
use super::{default_id, default_true, now_rfc3339, null_as_default};

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

wire_enum! {
    /// The kind of data a signature or parameter carries.
    pub enum DataModality {
        Audio => "Audio",
        File => "File",
        Float => "Float",
        Image => "Image",
        Integer => "Integer",
        Text => "Text",
        Video => "Video",
    }
}

wire_enum! {
    /// ModelSignature.receive_format: how the model receives the value.
    pub enum ReceiveFormat {
        File => "File",
        Link => "Link",
        Primitive => "Primitive",
    }
}

wire_enum! {
    /// ModelSignature.http_location: where in the HTTP request the value goes.
    pub enum HttpLocation {
        Body => "Body",
        Path => "Path",
        Query => "Query",
    }
}

wire_enum! {
    /// ModelSignature.signature_type.
    pub enum SignatureType {
        Input => "Input",
        Output => "Output",
    }
}

/// One version of a model, with its signatures and assets (schema `Model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    #[serde(default = "default_id")]
    pub id: String,
    pub account_id: String,
    #[serde(default = "default_id")]
    pub model_base_id: String,
    pub version_label: String,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default)]
    pub build_status: Option<ModelBuildStatus>,
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    pub short_description: String,
    #[serde(default)]
    pub assets: Vec<ModelAsset>,
    #[serde(default)]
    pub tags: Vec<AggregateTag>,
    pub name: String,
    /// Required by the schema, but absent from Models of the earlier published API (PROTOCOL.md §5),
    /// so defaulted to "" to keep reading them.
    #[serde(default)]
    pub model_class: String,
    #[serde(default)]
    pub url: Option<String>,
    pub request_type: HttpRequestType,
    pub model_type: ModelType,
    pub hosting_location: ModelHostingLocation,
    pub output_format: OutputFormat,
    pub long_description: String,
    #[serde(default)]
    pub inputs: Vec<ModelSignature>,
    #[serde(default)]
    pub outputs: Vec<ModelSignature>,
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
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
}

/// A file belonging to a model ("Logo", "File", ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAsset {
    #[serde(default = "default_id")]
    pub id: String,
    pub account_id: String,
    #[serde(default = "default_id")]
    pub model_id: String,
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
    pub model_id: String,
    pub name: String,
    pub tag_count: i64,
}

/// A tag a user added to a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTag {
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default = "default_id")]
    pub account_id: String,
    #[serde(default = "default_id")]
    pub model_id: String,
    pub name: String,
}

impl Default for ModelTag {
    fn default() -> Self {
        ModelTag { id: default_id(), account_id: default_id(), model_id: default_id(), name: String::new() }
    }
}

/// One input or output of a model.
///
/// The earlier published API had no `data_modality`: its `data_domain` held the modality (the same
/// seven values). When `data_modality` is missing it is read from `data_domain`, so those objects
/// still deserialize without losing the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ModelSignature {
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default = "default_id")]
    pub model_id: String,
    pub signature_type: SignatureType,
    pub data_modality: DataModality,
    pub data_domain: String,
    pub data_encoding: String,
    pub receive_format: ReceiveFormat,
    pub http_location: HttpLocation,
    pub hidden: bool,
    pub display_title: String,
    #[serde(default)]
    pub default_value: Option<String>,
    #[serde(default)]
    pub parameters: Vec<ModelParam>,
    #[serde(default)]
    pub transforms: Vec<SignatureTransform>,
    #[serde(default)]
    pub signature_args: BTreeMap<String, String>,
}

/// A named parameter of a signature. As for [`ModelSignature`], a missing `data_modality` is read
/// from the earlier API's `data_domain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ModelParam {
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default = "default_id")]
    pub model_id: String,
    #[serde(default = "default_id")]
    pub signature_id: String,
    pub data_modality: DataModality,
    pub data_encoding: String,
    pub parameter_name: String,
}

/// Reads an object and, when it lacks `data_modality`, copies the earlier API's `data_domain` into it.
fn with_modality_upgrade<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let mut object = Map::<String, Value>::deserialize(deserializer)?;
    if !object.contains_key("data_modality") {
        if let Some(domain) = object.get("data_domain").cloned() {
            object.insert(String::from("data_modality"), domain);
        }
    }
    Ok(Value::Object(object))
}

// `remote = "Self"` makes the derives generate inherent `serialize`/`deserialize` functions; these
// trait impls call them, adding the upgrade above on the way in.
impl Serialize for ModelSignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ModelSignature::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ModelSignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = with_modality_upgrade(deserializer)?;
        ModelSignature::deserialize(value).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ModelParam {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ModelParam::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ModelParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = with_modality_upgrade(deserializer)?;
        ModelParam::deserialize(value).map_err(serde::de::Error::custom)
    }
}

/// A named transform applied to a signature's value, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureTransform {
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default = "default_id")]
    pub signature_id: String,
    pub transform_name: String,
    #[serde(default)]
    pub transform_args: BTreeMap<String, String>,
}

impl Default for SignatureTransform {
    fn default() -> Self {
        SignatureTransform {
            id: default_id(),
            signature_id: default_id(),
            transform_name: String::new(),
            transform_args: BTreeMap::new(),
        }
    }
}

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
    #[serde(default)]
    pub account_id: String,
    #[serde(default = "default_id")]
    pub model_base_id: String,
    #[serde(default)]
    pub version_label: String,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    #[serde(default)]
    pub short_description: String,
    #[serde(default)]
    pub assets: Vec<ModelAsset>,
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
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "now_rfc3339")]
    pub creation_time: String,
    #[serde(default)]
    pub invocation_count: i64,
    #[serde(default)]
    pub model_previews: Vec<ModelPreview>,
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

/// Body of `persist/models/get` and `persist/models/bases/get`. `finished_models` restricts the
/// answer to models whose flags are all Finished. (The Python SDK sends `true` when the caller gives
/// no request at all; that choice belongs to the service, not to this default.)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GetModelsRequest {
    #[serde(default)]
    pub constraints: Option<QueryConstraints>,
    /// `Optional[bool] = False` in Python: `null` reads as false.
    #[serde(default, deserialize_with = "null_as_default")]
    pub finished_models: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TIME: &str = "2025-09-15T12:00:00.123456Z";

    fn signature_json() -> Value {
        json!({
            "id": "s1", "model_id": "m1", "signature_type": "Input", "data_modality": "Image",
            "data_domain": "photo", "data_encoding": "png", "receive_format": "File",
            "http_location": "Body", "hidden": false, "display_title": "Picture", "default_value": null,
            "parameters": [{
                "id": "p1", "model_id": "m1", "signature_id": "s1", "data_modality": "Integer",
                "data_encoding": "int32", "parameter_name": "width"
            }],
            "transforms": [{"id": "t1", "signature_id": "s1", "transform_name": "resize",
                            "transform_args": {"h": "224", "w": "224"}}],
            "signature_args": {"k": "v"}
        })
    }

    fn model_json() -> Value {
        json!({
            "id": "m1", "account_id": "a1", "model_base_id": "b1", "version_label": "v1", "active": true,
            "build_status": "Completed", "creation_time": TIME, "short_description": "short",
            "assets": [{"id": "as1", "account_id": "a1", "model_id": "m1", "asset_name": "Logo"}],
            "tags": [{"model_id": "m1", "name": "vision", "tag_count": 3}],
            "name": "resnet", "model_class": "ImageClassifier", "url": "https://example.invalid/run",
            "request_type": "Post", "model_type": "Pytorch_jit", "hosting_location": "Internal",
            "output_format": "Json", "long_description": "long",
            "inputs": [signature_json()],
            "outputs": [],
            "http_headers": {"X-A": "1"},
            "user_added_tags": [{"id": "t1", "account_id": "a1", "model_id": "m1", "name": "mine"}]
        })
    }

    #[test]
    fn model_round_trips() {
        let model: Model = serde_json::from_value(model_json()).unwrap();
        assert_eq!(model.model_type, ModelType::PytorchJit);
        assert_eq!(model.build_status, Some(ModelBuildStatus::Completed));
        assert_eq!(model.inputs[0].data_modality, DataModality::Image);
        assert_eq!(model.inputs[0].parameters[0].data_modality, DataModality::Integer);
        assert_eq!(model.inputs[0].transforms[0].transform_args["h"], "224");
        assert_eq!(model.tags[0].tag_count, 3);
        assert_eq!(serde_json::to_value(&model).unwrap(), model_json());
    }

    #[test]
    fn model_minimal_gets_schema_defaults_and_nulls() {
        let model: Model = serde_json::from_value(json!({
            "account_id": "a1", "version_label": "v1", "short_description": "s", "name": "n",
            "model_class": "c", "request_type": "Get", "model_type": "Api",
            "hosting_location": "External", "output_format": "Text", "long_description": "l",
            "future_field": {"nested": true}
        }))
        .unwrap();
        assert_eq!((model.id.as_str(), model.model_base_id.as_str()), ("0", "0"));
        assert!(model.active);
        assert!(model.assets.is_empty() && model.inputs.is_empty() && model.http_headers.is_empty());
        let out = serde_json::to_value(&model).unwrap();
        assert_eq!(out["build_status"], Value::Null);
        assert_eq!(out["url"], Value::Null);
        assert_eq!(out["http_headers"], json!({}));
        assert!(out.get("future_field").is_none());
        assert_eq!(out.as_object().unwrap().len(), 22, "every schema field is written");
    }

    #[test]
    fn model_of_the_earlier_api_deserializes() {
        // norman-core 0.1.0: no model_class, build_status, tags or user_added_tags; signatures and
        // params carry the modality in data_domain.
        let old = json!({
            "id": "m1", "account_id": "a1", "model_base_id": "b1", "version_label": "v1", "active": true,
            "creation_time": "2025-09-01T10:00:00Z", "short_description": "s",
            "assets": [{"account_id": "a1", "asset_name": "File"}],
            "name": "n", "url": "https://example.invalid", "request_type": "Post", "model_type": "Api",
            "hosting_location": "External", "output_format": "Json", "long_description": "l",
            "inputs": [{
                "signature_type": "Input", "data_domain": "Text", "data_encoding": "utf-8",
                "receive_format": "Primitive", "http_location": "Query", "hidden": false,
                "display_title": "Prompt",
                "parameters": [{"data_domain": "Integer", "data_encoding": "int", "parameter_name": "n"}]
            }],
            "outputs": [], "http_headers": {}
        });
        let model: Model = serde_json::from_value(old).unwrap();
        assert_eq!(model.model_class, "");
        assert_eq!(model.build_status, None);
        assert_eq!(model.assets[0].id, "0");
        assert_eq!(model.inputs[0].data_modality, DataModality::Text);
        assert_eq!(model.inputs[0].data_domain, "Text");
        assert_eq!(model.inputs[0].id, "0");
        assert_eq!(model.inputs[0].parameters[0].data_modality, DataModality::Integer);
        let out = serde_json::to_value(&model.inputs[0].parameters[0]).unwrap();
        assert_eq!(out["data_modality"], json!("Integer"));
        assert!(out.get("data_domain").is_none(), "a ModelParam has no data_domain in the schema");
    }

    #[test]
    fn signature_needs_a_modality_from_somewhere() {
        let mut signature = signature_json();
        signature.as_object_mut().unwrap().remove("data_modality");
        signature.as_object_mut().unwrap().remove("data_domain");
        let error = serde_json::from_value::<ModelSignature>(signature).unwrap_err();
        assert!(error.to_string().contains("data_modality"), "{error}");
        // An explicit data_modality wins over data_domain.
        let parsed: ModelSignature = serde_json::from_value(signature_json()).unwrap();
        assert_eq!((parsed.data_modality, parsed.data_domain.as_str()), (DataModality::Image, "photo"));
    }

    #[test]
    fn unknown_enum_values_survive() {
        let mut wire = model_json();
        wire["model_type"] = json!("Onnx");
        wire["build_status"] = json!("Queued");
        wire["inputs"][0]["data_modality"] = json!("PointCloud");
        wire["inputs"][0]["receive_format"] = json!("Stream");
        wire["inputs"][0]["http_location"] = json!("Header");
        wire["inputs"][0]["signature_type"] = json!("Both");
        wire["request_type"] = json!("Patch");
        wire["hosting_location"] = json!("Edge");
        wire["output_format"] = json!("Parquet");
        let model: Model = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(model.model_type, ModelType::Other("Onnx".into()));
        assert_eq!(model.inputs[0].data_modality, DataModality::Other("PointCloud".into()));
        assert_eq!(serde_json::to_value(&model).unwrap(), wire);
    }

    #[test]
    fn enum_wire_strings_match_the_schema() {
        fn names<T>(known: &[T], as_str: fn(&T) -> &str) -> Vec<&str> {
            known.iter().map(as_str).collect()
        }
        assert_eq!(names(ModelType::KNOWN, ModelType::as_str), ["Api", "Pytorch_jit", "Transformer_hf"]);
        assert_eq!(
            names(ModelHostingLocation::KNOWN, ModelHostingLocation::as_str),
            ["External", "Internal"]
        );
        assert_eq!(names(OutputFormat::KNOWN, OutputFormat::as_str), ["Binary", "Json", "Text"]);
        assert_eq!(names(HttpRequestType::KNOWN, HttpRequestType::as_str), ["Get", "Post", "Put"]);
        assert_eq!(
            names(ModelBuildStatus::KNOWN, ModelBuildStatus::as_str),
            ["InProgress", "Completed", "Failed"]
        );
        assert_eq!(
            names(DataModality::KNOWN, DataModality::as_str),
            ["Audio", "File", "Float", "Image", "Integer", "Text", "Video"]
        );
        assert_eq!(names(ReceiveFormat::KNOWN, ReceiveFormat::as_str), ["File", "Link", "Primitive"]);
        assert_eq!(names(HttpLocation::KNOWN, HttpLocation::as_str), ["Body", "Path", "Query"]);
        assert_eq!(names(SignatureType::KNOWN, SignatureType::as_str), ["Input", "Output"]);
    }

    #[test]
    fn nested_defaults_match_the_schema() {
        let asset: ModelAsset =
            serde_json::from_value(json!({"account_id": "a", "asset_name": "Logo"})).unwrap();
        assert_eq!(
            asset,
            ModelAsset { account_id: "a".into(), asset_name: "Logo".into(), ..Default::default() }
        );
        let tag: ModelTag = serde_json::from_value(json!({"name": "x"})).unwrap();
        assert_eq!(tag, ModelTag { name: "x".into(), ..Default::default() });
        let transform: SignatureTransform = serde_json::from_value(json!({"transform_name": "t"})).unwrap();
        assert_eq!(transform, SignatureTransform { transform_name: "t".into(), ..Default::default() });
        assert!(serde_json::from_value::<AggregateTag>(json!({"model_id": "m", "name": "x"})).is_err());
        assert!(serde_json::from_value::<ModelAsset>(json!({"account_id": "a"})).is_err());
    }

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

    #[test]
    fn get_models_request_defaults() {
        let request: GetModelsRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(request, GetModelsRequest::default());
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"constraints":null,"finished_models":false}"#
        );
        let null_flag: GetModelsRequest = serde_json::from_str(r#"{"finished_models":null}"#).unwrap();
        assert!(!null_flag.finished_models);
        let request = GetModelsRequest {
            constraints: Some(QueryConstraints::equals("Models", "Name", "x")),
            finished_models: true,
        };
        let back: GetModelsRequest = serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
        assert_eq!(back, request);
    }
}
