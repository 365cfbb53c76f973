//! Bodies of the file routes: upload pairing (`file-push/*`), link submission and download tracking
//! (`file-pull/*`).

use serde::{Deserialize, Serialize};

use super::invocations::{Invocation, InvocationSignature};
use super::models::{Model, ModelAsset};

/// POST `file-push/socket/pair/asset`: asks for an upload socket for one model asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketAssetPairingRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// Size in bytes of the file to upload.
    pub file_size_in_bytes: u64,
    /// Id of the model asset.
    pub asset_id: String,
}

/// POST `file-push/socket/pair/input`: asks for an upload socket for one invocation input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketInputPairingRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// Size in bytes of the file to upload.
    pub file_size_in_bytes: u64,
    /// Id of the invocation.
    pub invocation_id: String,
    /// Id of the invocation input.
    pub input_id: String,
}

/// POST `file-push/socket/complete`: the xxh3-64 of the uploaded bytes (16 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumRequest {
    /// Id of the upload pairing.
    pub pairing_id: String,
    /// xxh3-64 of the uploaded bytes: 16 lowercase hex digits.
    pub checksum: String,
}

/// The common part of the link submissions; what a tracked download carries as `download_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormanFileDownloadRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// URLs the backend fetches the file from.
    pub links: Vec<String>,
}

/// POST `file-pull/upload/assets`: links the backend fetches a model asset from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDownloadRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// URLs the backend fetches the file from.
    pub links: Vec<String>,
    /// Id of the model asset.
    pub asset_id: String,
    /// Required by the schema, but absent from this request in the earlier published API
    /// (PROTOCOL.md §5), so defaulted to "" to keep reading it.
    #[serde(default)]
    pub asset_name: String,
}

/// POST `file-pull/upload/inputs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDownloadRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// URLs the backend fetches the file from.
    pub links: Vec<String>,
    /// Id of the model signature (input or output slot).
    pub signature_id: String,
    /// Id of the invocation.
    pub invocation_id: String,
    /// Id of the invocation input.
    pub input_id: String,
}

/// POST `file-pull/upload/outputs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDownloadRequest {
    /// Id of the account.
    pub account_id: String,
    /// Id of the model.
    pub model_id: String,
    /// URLs the backend fetches the file from.
    pub links: Vec<String>,
    /// Id of the model signature (input or output slot).
    pub signature_id: String,
    /// Id of the invocation.
    pub invocation_id: String,
    /// Id of the invocation output.
    pub output_id: String,
}

/// Progress of the backend fetching a model asset from a link. Its `entity_type` ("Asset") is the tag
/// of [`TrackedDownload`] and is not a field here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedAssetDownload {
    /// The submission that started this download.
    pub download_request: NormanFileDownloadRequest,
    /// The link this download fetches.
    pub file_link: String,
    /// The model the asset belongs to.
    pub model: Model,
    /// Bytes fetched so far.
    #[serde(default)]
    pub downloaded_bytes: u64,
    /// Size of the file in bytes (0 while unknown).
    #[serde(default)]
    pub total_bytes: u64,
    /// xxh3-64 of the fetched bytes (16 lowercase hex digits; "" until known).
    #[serde(default)]
    pub file_checksum: String,
    /// The asset being fetched.
    pub asset: ModelAsset,
}

/// Progress of the backend fetching an invocation input ("Input").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedInputDownload {
    /// The submission that started this download.
    pub download_request: NormanFileDownloadRequest,
    /// The link this download fetches.
    pub file_link: String,
    /// The model invoked.
    pub model: Model,
    /// Bytes fetched so far.
    #[serde(default)]
    pub downloaded_bytes: u64,
    /// Size of the file in bytes (0 while unknown).
    #[serde(default)]
    pub total_bytes: u64,
    /// xxh3-64 of the fetched bytes (16 lowercase hex digits; "" until known).
    #[serde(default)]
    pub file_checksum: String,
    /// The invocation the input belongs to.
    pub invocation: Invocation,
    /// The input being fetched.
    pub invocation_input: InvocationSignature,
}

/// Progress of the backend fetching an invocation output ("Output").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedOutputDownload {
    /// The submission that started this download.
    pub download_request: NormanFileDownloadRequest,
    /// The link this download fetches.
    pub file_link: String,
    /// The model invoked.
    pub model: Model,
    /// Bytes fetched so far.
    #[serde(default)]
    pub downloaded_bytes: u64,
    /// Size of the file in bytes (0 while unknown).
    #[serde(default)]
    pub total_bytes: u64,
    /// xxh3-64 of the fetched bytes (16 lowercase hex digits; "" until known).
    #[serde(default)]
    pub file_checksum: String,
    /// The invocation the output belongs to.
    pub invocation: Invocation,
    /// The output being fetched.
    pub invocation_output: InvocationSignature,
}

/// GET `file-pull/metadata/{entity_id}`: one of the three, told apart by `entity_type`. An unknown or
/// missing `entity_type` is an error (there is nothing sensible to read it as).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entity_type")]
pub enum TrackedDownload {
    /// A model asset (`"Asset"`).
    Asset(TrackedAssetDownload),
    /// An invocation input (`"Input"`).
    Input(TrackedInputDownload),
    /// An invocation output (`"Output"`).
    Output(TrackedOutputDownload),
}

impl TrackedDownload {
    /// The wire tag: "Asset", "Input" or "Output".
    pub fn entity_type(&self) -> &'static str {
        match self {
            TrackedDownload::Asset(_) => "Asset",
            TrackedDownload::Input(_) => "Input",
            TrackedDownload::Output(_) => "Output",
        }
    }

    /// The id of the entity being fetched (the asset, input or output id).
    pub fn entity_id(&self) -> &str {
        match self {
            TrackedDownload::Asset(download) => &download.asset.id,
            TrackedDownload::Input(download) => &download.invocation_input.id,
            TrackedDownload::Output(download) => &download.invocation_output.id,
        }
    }

    /// The model the entity belongs to.
    pub fn model(&self) -> &Model {
        match self {
            TrackedDownload::Asset(download) => &download.model,
            TrackedDownload::Input(download) => &download.model,
            TrackedDownload::Output(download) => &download.model,
        }
    }

    /// `(downloaded_bytes, total_bytes)`.
    pub fn progress(&self) -> (u64, u64) {
        match self {
            TrackedDownload::Asset(d) => (d.downloaded_bytes, d.total_bytes),
            TrackedDownload::Input(d) => (d.downloaded_bytes, d.total_bytes),
            TrackedDownload::Output(d) => (d.downloaded_bytes, d.total_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn model() -> Value {
        json!({
            "id": "m1", "account_id": "a1", "model_base_id": "b1", "version_label": "v1", "active": true,
            "build_status": null, "creation_time": "2025-09-15T12:00:00.123456Z",
            "short_description": "s", "assets": [], "tags": [], "name": "n", "model_class": "c",
            "url": null, "request_type": "Post", "model_type": "Api", "hosting_location": "External",
            "output_format": "Json", "long_description": "l", "inputs": [], "outputs": [],
            "http_headers": {}, "user_added_tags": []
        })
    }

    fn invocation() -> Value {
        json!({"id": "i1", "account_id": "a1", "model_id": "m1",
               "creation_time": "2025-09-15T12:00:00.123456Z", "inputs": [], "outputs": []})
    }

    fn signature(id: &str) -> Value {
        json!({"id": id, "account_id": "a1", "model_id": "m1", "signature_id": "s1",
               "invocation_id": "i1", "display_title": "t"})
    }

    fn tracked(entity_type: &str) -> Value {
        let mut wire = json!({
            "entity_type": entity_type,
            "download_request": {"account_id": "a1", "model_id": "m1", "links": ["https://example.invalid/f"]},
            "file_link": "https://example.invalid/f",
            "model": model(),
            "downloaded_bytes": 10, "total_bytes": 20, "file_checksum": "2d06800538d394c2"
        });
        let object = wire.as_object_mut().unwrap();
        match entity_type {
            "Asset" => {
                object.insert(
                    "asset".into(),
                    json!({"id": "as1", "account_id": "a1", "model_id": "m1", "asset_name": "File"}),
                );
            }
            "Input" => {
                object.insert("invocation".into(), invocation());
                object.insert("invocation_input".into(), signature("in1"));
            }
            _ => {
                object.insert("invocation".into(), invocation());
                object.insert("invocation_output".into(), signature("out1"));
            }
        }
        wire
    }

    #[test]
    fn tracked_download_is_discriminated_by_entity_type() {
        for (kind, id) in [("Asset", "as1"), ("Input", "in1"), ("Output", "out1")] {
            let wire = tracked(kind);
            let download: TrackedDownload = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(download.entity_type(), kind);
            assert_eq!(download.entity_id(), id);
            assert_eq!(download.model().id, "m1");
            assert_eq!(download.progress(), (10, 20));
            match (&download, kind) {
                (TrackedDownload::Asset(_), "Asset")
                | (TrackedDownload::Input(_), "Input")
                | (TrackedDownload::Output(_), "Output") => {}
                other => panic!("wrong variant {other:?}"),
            }
            assert_eq!(serde_json::to_value(&download).unwrap(), wire);
        }
    }

    #[test]
    fn tracked_download_rejects_unknown_or_missing_entity_type() {
        let mut wire = tracked("Asset");
        wire["entity_type"] = json!("Model");
        assert!(serde_json::from_value::<TrackedDownload>(wire.clone()).is_err());
        wire.as_object_mut().unwrap().remove("entity_type");
        assert!(serde_json::from_value::<TrackedDownload>(wire).is_err());
        // The right tag with the wrong body is an error too.
        let mut wire = tracked("Input");
        wire["entity_type"] = json!("Output");
        assert!(serde_json::from_value::<TrackedDownload>(wire).is_err());
    }

    #[test]
    fn tracked_download_defaults_and_unknown_fields() {
        let mut wire = tracked("Output");
        let object = wire.as_object_mut().unwrap();
        object.remove("downloaded_bytes");
        object.remove("total_bytes");
        object.remove("file_checksum");
        object.insert("started_at".into(), json!("2025-09-15T12:00:00Z"));
        let TrackedDownload::Output(download) = serde_json::from_value(wire).unwrap() else {
            panic!("expected an output download")
        };
        assert_eq!((download.downloaded_bytes, download.total_bytes), (0, 0));
        assert_eq!(download.file_checksum, "");
        assert_eq!(download.invocation_output.id, "out1");
    }

    #[test]
    fn pairing_and_checksum_requests_round_trip() {
        let asset =
            json!({"account_id": "a1", "model_id": "m1", "file_size_in_bytes": 1234, "asset_id": "as1"});
        let parsed: SocketAssetPairingRequest = serde_json::from_value(asset.clone()).unwrap();
        assert_eq!(parsed.file_size_in_bytes, 1234);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), asset);

        let input = json!({"account_id": "a1", "model_id": "m1", "file_size_in_bytes": 0,
                           "invocation_id": "i1", "input_id": "in1", "unknown": true});
        let parsed: SocketInputPairingRequest = serde_json::from_value(input).unwrap();
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            r#"{"account_id":"a1","model_id":"m1","file_size_in_bytes":0,"invocation_id":"i1","input_id":"in1"}"#
        );

        let checksum = ChecksumRequest { pairing_id: "p1".into(), checksum: "78af5f94892f3950".into() };
        assert_eq!(
            serde_json::to_string(&checksum).unwrap(),
            r#"{"pairing_id":"p1","checksum":"78af5f94892f3950"}"#
        );
        assert!(serde_json::from_value::<SocketAssetPairingRequest>(json!({"account_id": "a1"})).is_err());
        assert!(serde_json::from_value::<SocketAssetPairingRequest>(
            json!({"account_id": "a1", "model_id": "m1", "file_size_in_bytes": -1, "asset_id": "as1"})
        )
        .is_err());
    }

    #[test]
    fn download_requests_round_trip() {
        let asset = json!({"account_id": "a1", "model_id": "m1", "links": ["l1", "l2"], "asset_id": "as1", "asset_name": "Logo"});
        let parsed: AssetDownloadRequest = serde_json::from_value(asset.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), asset);

        // The earlier API sent no asset_name.
        let old: AssetDownloadRequest = serde_json::from_value(
            json!({"account_id": "a1", "model_id": "m1", "links": [], "asset_id": "as1"}),
        )
        .unwrap();
        assert_eq!(old.asset_name, "");

        let input = json!({"account_id": "a1", "model_id": "m1", "links": ["l"], "signature_id": "s1",
                           "invocation_id": "i1", "input_id": "in1"});
        let parsed: InputDownloadRequest = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), input);

        let output = json!({"account_id": "a1", "model_id": "m1", "links": ["l"], "signature_id": "s2",
                            "invocation_id": "i1", "output_id": "out1"});
        let parsed: OutputDownloadRequest = serde_json::from_value(output.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), output);
        assert!(serde_json::from_value::<OutputDownloadRequest>(input).is_err(), "output_id is required");

        let base = json!({"account_id": "a1", "model_id": "m1", "links": ["l"]});
        let parsed: NormanFileDownloadRequest = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), base);
    }

    #[test]
    fn pairing_response_is_reexported() {
        let response: super::super::SocketPairingResponse = serde_json::from_value(json!({
            "pairing_id": "p1", "host": "127.0.0.1", "port": 4000,
            "encryption_key": "k", "nonce": "n", "authentication_header": "h"
        }))
        .unwrap();
        assert_eq!(response.port, 4000);
    }
}
