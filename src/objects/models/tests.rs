//! Tests of the model objects, and the fixtures the submodules' tests share.

use super::*;
use serde_json::{json, Value};

pub(super) const TIME: &str = "2025-09-15T12:00:00.123456Z";

pub(super) fn signature_json() -> Value {
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
    assert_eq!(names(ModelHostingLocation::KNOWN, ModelHostingLocation::as_str), ["External", "Internal"]);
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
    let asset: ModelAsset = serde_json::from_value(json!({"account_id": "a", "asset_name": "Logo"})).unwrap();
    assert_eq!(asset, ModelAsset { account_id: "a".into(), asset_name: "Logo".into(), ..Default::default() });
    let tag: ModelTag = serde_json::from_value(json!({"name": "x"})).unwrap();
    assert_eq!(tag, ModelTag { name: "x".into(), ..Default::default() });
    let transform: SignatureTransform = serde_json::from_value(json!({"transform_name": "t"})).unwrap();
    assert_eq!(transform, SignatureTransform { transform_name: "t".into(), ..Default::default() });
    assert!(serde_json::from_value::<AggregateTag>(json!({"model_id": "m", "name": "x"})).is_err());
    assert!(serde_json::from_value::<ModelAsset>(json!({"account_id": "a"})).is_err());
}

#[test]
fn get_models_request_defaults() {
    let request: GetModelsRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(request, GetModelsRequest::default());
    assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"constraints":null,"finished_models":false}"#);
    let null_flag: GetModelsRequest = serde_json::from_str(r#"{"finished_models":null}"#).unwrap();
    assert!(!null_flag.finished_models);
    let request = GetModelsRequest {
        constraints: Some(QueryConstraints::equals("Models", "Name", "x")),
        finished_models: true,
    };
    let back: GetModelsRequest = serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
    assert_eq!(back, request);
}
