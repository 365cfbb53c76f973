//! Relaxed Extended JSON to and from raw documents, keeping the order of keys (py-bson and BSON keep
//! insertion order; a `serde_json::Value` would sort them). In the py-bson dialect, 0x11 is the
//! unsigned integer py-bson means by it, both ways: an integer above `i64::MAX` becomes 0x11 and
//! `$timestamp` is refused.

use std::fmt::{self, Write as _};

use bson::raw::{RawBsonRef, RawDocument, RawDocumentBuf};
use bson::{Bson, Document};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{py_bson, walk, Dialect};
use crate::error::{Error, Result};

/// Bounds the recursion of the conversions (documents from a [`super::FrameReader`] are already
/// bounded by its limits; this protects callers passing unchecked bytes).
const MAX_DEPTH: u32 = 512;

/// One line of relaxed Extended JSON for `doc`.
pub fn to_relaxed_extjson(doc: &RawDocument, dialect: Dialect) -> Result<String> {
    let mut out = String::with_capacity(doc.as_bytes().len() + doc.as_bytes().len() / 4);
    write_document(&mut out, doc, false, dialect, 1)
        .map_err(|message| Error::Decode { what: "BSON document as Extended JSON".into(), message })?;
    Ok(out)
}

/// Parses relaxed (or canonical) Extended JSON holding one object into a document.
pub fn from_relaxed_extjson(json: &str, dialect: Dialect) -> Result<RawDocumentBuf> {
    let bad = |message: String| Error::InvalidArgument(format!("Extended JSON: {message}"));
    let value: Json = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let Json::Object(entries) = value else {
        return Err(bad("a BSON document must be a JSON object".into()));
    };
    let doc = to_document(entries, dialect, "").map_err(bad)?;
    RawDocumentBuf::try_from(&doc).map_err(|e| bad(e.to_string()))
}

type Out = std::result::Result<(), String>;

fn write_document(out: &mut String, doc: &RawDocument, array: bool, dialect: Dialect, depth: u32) -> Out {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    out.push(if array { '[' } else { '{' });
    for (i, element) in doc.iter_elements().enumerate() {
        let element = element.map_err(|e| e.to_string())?;
        if i > 0 {
            out.push(',');
        }
        if !array {
            write_string(out, element.key().as_str());
            out.push(':');
        }
        let value = element.value().map_err(|e| e.to_string())?;
        write_value(out, value, dialect, depth)?;
    }
    out.push(if array { ']' } else { '}' });
    Ok(())
}

fn write_value(out: &mut String, value: RawBsonRef<'_>, dialect: Dialect, depth: u32) -> Out {
    match value {
        RawBsonRef::Document(d) => write_document(out, d, false, dialect, depth + 1),
        RawBsonRef::Array(a) => {
            let doc = RawDocument::from_bytes(a.as_bytes()).map_err(|e| e.to_string())?;
            write_document(out, doc, true, dialect, depth + 1)
        }
        RawBsonRef::String(s) => {
            write_string(out, s);
            Ok(())
        }
        RawBsonRef::Int32(v) => write!(out, "{v}").map_err(|e| e.to_string()),
        RawBsonRef::Int64(v) => write!(out, "{v}").map_err(|e| e.to_string()),
        RawBsonRef::Boolean(v) => write!(out, "{v}").map_err(|e| e.to_string()),
        RawBsonRef::Null => {
            out.push_str("null");
            Ok(())
        }
        RawBsonRef::Double(v) if v.is_finite() => {
            out.push_str(&serde_json::to_string(&v).map_err(|e| e.to_string())?);
            Ok(())
        }
        RawBsonRef::Timestamp(_) if dialect == Dialect::PyBson => {
            write!(out, "{}", py_bson::as_u64(&value).unwrap_or_default()).map_err(|e| e.to_string())
        }
        other => {
            // The remaining types are small objects; a scope document is the only nesting.
            if let RawBsonRef::JavaScriptCodeWithScope(c) = other {
                walk::walk(c.scope, MAX_DEPTH.saturating_sub(depth).max(1), |_| None)
                    .map_err(|e| e.into_error("scope").to_string())?;
            }
            let json = Bson::try_from(other).map_err(|e| e.to_string())?.into_relaxed_extjson();
            out.push_str(&serde_json::to_string(&json).map_err(|e| e.to_string())?);
            Ok(())
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires; writing into a String cannot fail.
    let escaped = serde_json::to_string(s).unwrap_or_default();
    out.push_str(&escaped);
}

/// JSON as parsed, objects in their order.
enum Json {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Json, E> {
        Ok(Json::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(Json::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Json, E> {
        Ok(Json::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// The keys that make an object an Extended JSON value rather than a document (as the bson crate
/// decides it).
const SPECIAL_KEYS: [&str; 16] = [
    "$oid",
    "$symbol",
    "$regularExpression",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$code",
    "$timestamp",
    "$date",
    "$minKey",
    "$maxKey",
    "$dbPointer",
    "$undefined",
];

fn to_document(
    entries: Vec<(String, Json)>,
    dialect: Dialect,
    path: &str,
) -> std::result::Result<Document, String> {
    let mut doc = Document::new();
    for (key, value) in entries {
        let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let value = to_bson(value, dialect, &at)?;
        doc.insert(key, value);
    }
    Ok(doc)
}

fn to_bson(value: Json, dialect: Dialect, path: &str) -> std::result::Result<Bson, String> {
    Ok(match value {
        Json::Null => Bson::Null,
        Json::Bool(v) => Bson::Boolean(v),
        Json::U64(v) => match (i32::try_from(v), i64::try_from(v)) {
            (Ok(v), _) => Bson::Int32(v),
            (_, Ok(v)) => Bson::Int64(v),
            _ if dialect == Dialect::PyBson => py_bson::uint64(v),
            _ => Bson::Double(v as f64),
        },
        Json::I64(v) => i32::try_from(v).map(Bson::Int32).unwrap_or(Bson::Int64(v)),
        Json::F64(v) => Bson::Double(v),
        Json::String(v) => Bson::String(v),
        Json::Array(items) => Bson::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_bson(item, dialect, &format!("{path}.{i}")))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Json::Object(entries) => {
            if !entries.iter().any(|(k, _)| SPECIAL_KEYS.contains(&k.as_str())) {
                return Ok(Bson::Document(to_document(entries, dialect, path)?));
            }
            if dialect == Dialect::PyBson && entries.iter().any(|(k, _)| k == "$timestamp") {
                return Err(format!(
                    "field `{path}`: a $timestamp is 0x11, which py-bson reads as a uint64; \
                     write the integer instead"
                ));
            }
            let object = serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, v.into())).collect());
            Bson::try_from(object).map_err(|e| format!("field `{path}`: {e}"))?
        }
    })
}

impl From<Json> for serde_json::Value {
    fn from(value: Json) -> Self {
        match value {
            Json::Null => serde_json::Value::Null,
            Json::Bool(v) => v.into(),
            Json::U64(v) => v.into(),
            Json::I64(v) => v.into(),
            Json::F64(v) => v.into(),
            Json::String(v) => v.into(),
            Json::Array(items) => items.into_iter().map(serde_json::Value::from).collect(),
            Json::Object(entries) => {
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}
