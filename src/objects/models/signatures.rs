//! Model signatures (inputs and outputs), their parameters and transforms, and their enums.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::objects::default_id;

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

/// One input or output of a model.
///
/// The earlier published API had no `data_modality`: its `data_domain` held the modality (the same
/// seven values). When `data_modality` is missing it is read from `data_domain`, so those objects
/// still deserialize without losing the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ModelSignature {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the model.
    #[serde(default = "default_id")]
    pub model_id: String,
    /// Input or output.
    pub signature_type: SignatureType,
    /// Kind of data carried.
    pub data_modality: DataModality,
    /// The earlier API's field for the modality (kept as received).
    pub data_domain: String,
    /// How the data is encoded (e.g. a file format).
    pub data_encoding: String,
    /// How the model receives the value.
    pub receive_format: ReceiveFormat,
    /// Where in the HTTP request the value goes.
    pub http_location: HttpLocation,
    /// Whether the signature is hidden from users.
    pub hidden: bool,
    /// Title shown for this input or output.
    pub display_title: String,
    /// Value used when none is given.
    #[serde(default)]
    pub default_value: Option<String>,
    /// Named parameters of this signature.
    #[serde(default)]
    pub parameters: Vec<ModelParam>,
    /// Transforms applied to the value.
    #[serde(default)]
    pub transforms: Vec<SignatureTransform>,
    /// Extra arguments, by name.
    #[serde(default)]
    pub signature_args: BTreeMap<String, String>,
}

/// A named parameter of a signature. As for [`ModelSignature`], a missing `data_modality` is read
/// from the earlier API's `data_domain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ModelParam {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the model.
    #[serde(default = "default_id")]
    pub model_id: String,
    /// Id of the model signature (input or output slot).
    #[serde(default = "default_id")]
    pub signature_id: String,
    /// Kind of data carried.
    pub data_modality: DataModality,
    /// How the data is encoded.
    pub data_encoding: String,
    /// The parameter's name.
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
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the model signature (input or output slot).
    #[serde(default = "default_id")]
    pub signature_id: String,
    /// The transform's name.
    pub transform_name: String,
    /// Its arguments, by name.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::models::tests::signature_json;

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
}
