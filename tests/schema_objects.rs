//! The Rust objects cannot drift from docs/schemas/norman_objects.json (the schema of the real
//! pydantic models): for every object of the schema, examples that set every property (each enum
//! value and each `anyOf` alternative in turn, nested objects included) must deserialize into the
//! Rust type and serialize back unchanged. A property the schema gains and Rust lacks is dropped on
//! the way (Rust ignores unknown keys) and fails here, naming it; so does a property Rust writes that
//! the schema does not know, a type that does not fit, or an object of the schema with no Rust type.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use norman::objects::{
    Account, AssetDownloadRequest, ChecksumRequest, InputDownloadRequest, Invocation, LoginResponse, Model,
    OutputDownloadRequest, QueryConstraints, SocketAssetPairingRequest, SocketInputPairingRequest,
    SocketPairingResponse, StatusFlag, TrackedDownload,
};

type RoundTrip = fn(&Value) -> Result<Value, String>;

fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| format!("does not deserialize: {e}"))?;
    serde_json::to_value(&typed).map_err(|e| format!("does not serialize: {e}"))
}

/// Every object of the schema and its Rust type. A schema object missing here fails the test.
const RUST_TYPES: &[(&str, RoundTrip)] = &[
    ("SocketPairingResponse", round_trip::<SocketPairingResponse>),
    ("SocketAssetPairingRequest", round_trip::<SocketAssetPairingRequest>),
    ("SocketInputPairingRequest", round_trip::<SocketInputPairingRequest>),
    ("ChecksumRequest", round_trip::<ChecksumRequest>),
    ("AssetDownloadRequest", round_trip::<AssetDownloadRequest>),
    ("InputDownloadRequest", round_trip::<InputDownloadRequest>),
    ("OutputDownloadRequest", round_trip::<OutputDownloadRequest>),
    ("StatusFlag", round_trip::<StatusFlag>),
    ("QueryConstraints", round_trip::<QueryConstraints>),
    ("LoginResponse", round_trip::<LoginResponse>),
    ("Account", round_trip::<Account>),
    ("Model", round_trip::<Model>),
    ("Invocation", round_trip::<Invocation>),
    ("TrackedDownloadUnion", round_trip::<TrackedDownload>),
];

/// Examples per object: enough to use each enum value and `anyOf` alternative at least once.
const VARIANTS: usize = 12;
/// Recursive objects (FilterClause in FilterClause) stop nesting here.
const MAX_DEPTH: usize = 8;

fn schema() -> Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schemas/norman_objects.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An example of `node` (a schema of one object's `$defs`), the `variant`-th choice at each fork.
fn example(node: &Value, defs: &Map<String, Value>, variant: usize, depth: usize) -> Value {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        let def = defs.get(name).unwrap_or_else(|| panic!("unresolved {reference}"));
        return example(def, defs, variant, depth);
    }
    if let Some(constant) = node.get("const") {
        return constant.clone();
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return values[variant % values.len()].clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = node.get(key).and_then(Value::as_array) {
            let alternatives: Vec<&Value> =
                alternatives.iter().filter(|a| a.get("type") != Some(&json!("null"))).collect();
            // Past the depth limit, the last alternative (a leaf in the recursive unions here).
            let pick = if depth >= MAX_DEPTH { alternatives.len() - 1 } else { variant % alternatives.len() };
            return example(alternatives[pick], defs, variant, depth + 1);
        }
    }
    match node.get("type").and_then(Value::as_str) {
        Some("string") if node.get("format") == Some(&json!("date-time")) => {
            json!("2025-09-15T12:00:00.123456Z")
        }
        Some("string") => json!(format!("s{variant}-{depth}")),
        Some("integer") => json!(7 + variant as i64),
        Some("number") => json!(2.5 + variant as f64),
        Some("boolean") => json!(variant.is_multiple_of(2)),
        Some("array") if node.get("prefixItems").is_some() => {
            let items = node["prefixItems"].as_array().unwrap();
            Value::Array(items.iter().map(|i| example(i, defs, variant, depth + 1)).collect())
        }
        Some("array") if depth >= MAX_DEPTH => json!([]),
        Some("array") => {
            // Two items, with different choices, so lists of unions hold each kind.
            let items = &node["items"];
            let mut values =
                vec![example(items, defs, variant, depth + 1), example(items, defs, variant + 1, depth + 1)];
            if node.get("uniqueItems") == Some(&json!(true)) && values[0] == values[1] {
                values.pop();
            }
            Value::Array(values)
        }
        Some("object") if node.get("properties").is_some() => {
            let mut object = Map::new();
            for (name, property) in node["properties"].as_object().unwrap() {
                object.insert(name.clone(), example(property, defs, variant, depth + 1));
            }
            Value::Object(object)
        }
        Some("object") => {
            let values = node.get("additionalProperties").cloned().unwrap_or(json!({"type": "string"}));
            json!({ "key": example(&values, defs, variant, depth + 1) })
        }
        other => panic!("a schema node this test does not know ({other:?}): {node}"),
    }
}

/// Where `got` differs from `want`: missing and unknown keys by path, then other differences.
fn differences(want: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let keys: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
            for key in keys {
                match (w.get(key), g.get(key)) {
                    (Some(_), None) => out.push(format!("{path}.{key}: in the schema, not in the Rust type")),
                    (None, Some(_)) => out.push(format!("{path}.{key}: in the Rust type, not in the schema")),
                    (Some(w), Some(g)) => differences(w, g, &format!("{path}.{key}"), out),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                differences(w, g, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        _ if want == got => {}
        _ => out.push(format!("{path}: sent {want}, got back {got}")),
    }
}

#[test]
fn every_schema_object_round_trips_through_its_rust_type() {
    let schema = schema();
    let mut problems = Vec::new();
    for (name, object) in &schema {
        let Some((_, round_trip)) = RUST_TYPES.iter().find(|(n, _)| n == name) else {
            problems.push(format!("{name}: an object of the schema with no Rust type in this test"));
            continue;
        };
        let defs = object.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
        for variant in 0..VARIANTS {
            let sent = example(object, &defs, variant, 0);
            match round_trip(&sent) {
                Ok(got) => differences(&sent, &got, name, &mut problems),
                Err(e) => problems.push(format!("{name} (example {variant}): {e}: {sent}")),
            }
        }
    }
    for (name, _) in RUST_TYPES {
        if !schema.contains_key(*name) {
            problems.push(format!("{name}: no longer in the schema"));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "the Rust objects drift from the schema:\n{}", problems.join("\n"));
}

#[test]
fn a_property_added_to_the_schema_is_caught() {
    // The check itself: a schema with one more property of Model fails, naming it.
    let mut schema = schema();
    let model = schema.get_mut("Model").unwrap();
    model["properties"]["license"] = json!({"type": "string"});
    let defs = model["$defs"].as_object().cloned().unwrap();
    let sent = example(model, &defs, 0, 0);
    let got = round_trip::<Model>(&sent).unwrap();
    let mut problems = Vec::new();
    differences(&sent, &got, "Model", &mut problems);
    assert_eq!(problems, vec!["Model.license: in the schema, not in the Rust type".to_owned()]);
}
