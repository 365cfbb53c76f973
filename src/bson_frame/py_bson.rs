//! The py-bson dialect (PyPI `bson` 0.5.10, `bson.patch_socket()`): what its codec can read, and its
//! non-standard element 0x11, an unsigned 64-bit integer (BSON's Timestamp in the spec).
//!
//! py-bson decodes only double, string, document, array, binary, ObjectId (as 24 hex characters of
//! `bytes`), bool, UTC datetime, null, int32, 0x11 as uint64 and int64. Any other element makes its
//! decoder fail or, worse, silently reuse the previous value and mis-parse the rest. Binary subtypes
//! 3 and 4 become a `uuid.UUID` (which needs 16 bytes); every other subtype is dropped.

use bson::raw::RawBsonRef;
use bson::spec::BinarySubtype;
use bson::{Bson, Timestamp};

/// The range of Python's `datetime` (years 1 to 9999) in Unix milliseconds: py-bson fails outside.
const PY_DATETIME_MIN_MS: i64 = -62_135_596_800_000;
const PY_DATETIME_MAX_MS: i64 = 253_402_300_799_999;

/// Why py-bson could not read `value` or would misread it, or `None` when it reads it faithfully.
/// 0x11 is accepted only when the caller means it as py-bson's uint64 (`allow_uint64`).
pub(crate) fn refusal(value: &RawBsonRef<'_>, allow_uint64: bool) -> Option<String> {
    let unreadable = |what: &str| {
        Some(format!(
            "holds {what}, which py-bson cannot decode (its decoder fails, or reuses the previous \
             value and mis-parses the rest of the document)"
        ))
    };
    match value {
        RawBsonRef::Double(_)
        | RawBsonRef::String(_)
        | RawBsonRef::Document(_)
        | RawBsonRef::Array(_)
        | RawBsonRef::Boolean(_)
        | RawBsonRef::Null
        | RawBsonRef::Int32(_)
        | RawBsonRef::Int64(_) => None,
        RawBsonRef::Timestamp(_) if allow_uint64 => None,
        RawBsonRef::Timestamp(_) => Some(
            "holds a Timestamp (0x11), which py-bson reads as the unsigned integer (t << 32) | i; \
             to send a uint64 on purpose, build it with py_bson::uint64 and allow it"
                .to_string(),
        ),
        RawBsonRef::Binary(b) => match b.subtype {
            BinarySubtype::Generic => None,
            BinarySubtype::Uuid if b.bytes.len() == 16 => None,
            BinarySubtype::Uuid => Some(format!(
                "holds a UUID binary (subtype 4) of {} bytes; py-bson builds a uuid.UUID from it, \
                 which needs exactly 16",
                b.bytes.len()
            )),
            BinarySubtype::UuidOld => Some(
                "holds a legacy UUID binary (subtype 3), which py-bson turns into a uuid.UUID and \
                 sends back as subtype 4"
                    .to_string(),
            ),
            other => Some(format!(
                "holds a binary of subtype {:#04x}, which py-bson reads as plain bytes, dropping the \
                 subtype{}",
                u8::from(other),
                if matches!(other, BinarySubtype::BinaryOld) {
                    " (and keeping the old inner length in the bytes)"
                } else {
                    ""
                }
            )),
        },
        RawBsonRef::DateTime(d) => {
            let ms = d.timestamp_millis();
            if (PY_DATETIME_MIN_MS..=PY_DATETIME_MAX_MS).contains(&ms) {
                None
            } else {
                Some(format!(
                    "holds a datetime ({ms} ms since 1970) outside the years 1 to 9999 that \
                     py-bson's datetime can hold"
                ))
            }
        }
        RawBsonRef::ObjectId(_) => Some(
            "holds an ObjectId, which py-bson reads as 24 hex characters of bytes; send the hex \
             string instead"
                .to_string(),
        ),
        RawBsonRef::Decimal128(_) => unreadable("a Decimal128 (0x13)"),
        RawBsonRef::RegularExpression(_) => unreadable("a regular expression (0x0b)"),
        RawBsonRef::JavaScriptCode(_) => unreadable("JavaScript code (0x0d)"),
        RawBsonRef::JavaScriptCodeWithScope(_) => unreadable("JavaScript code with scope (0x0f)"),
        RawBsonRef::Symbol(_) => unreadable("a symbol (0x0e)"),
        RawBsonRef::Undefined => unreadable("undefined (0x06)"),
        RawBsonRef::MinKey => unreadable("MinKey (0xff)"),
        RawBsonRef::MaxKey => unreadable("MaxKey (0x7f)"),
        RawBsonRef::DbPointer(_) => unreadable("a DBPointer (0x0c)"),
    }
}

/// py-bson's 0x11 element as the u64 it means: `(time << 32) | increment`.
pub fn as_u64(value: &RawBsonRef<'_>) -> Option<u64> {
    match value {
        RawBsonRef::Timestamp(t) => Some(timestamp_to_u64(*t)),
        _ => None,
    }
}

/// The u64 carried by a 0x11 element (time in the high 32 bits, increment in the low).
pub fn timestamp_to_u64(t: Timestamp) -> u64 {
    (u64::from(t.time) << 32) | u64::from(t.increment)
}

/// The 0x11 element py-bson writes for an integer in (2^63 - 1, 2^64 - 1]: same bytes, u64 LE.
pub fn uint64(value: u64) -> Bson {
    Bson::Timestamp(Timestamp { time: (value >> 32) as u32, increment: value as u32 })
}

/// Serde helper for a `u64` field exchanged with py-bson: `#[serde(with = "norman::bson_frame::py_bson::u64_field")]`.
/// Writes values up to `i64::MAX` as int64 (py-bson reads an int) and larger ones as py-bson's
/// 0x11 uint64 (the writer must then allow uint64); reads int32, int64 (not negative) and 0x11.
pub mod u64_field {
    use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

    /// Writes int64 up to `i64::MAX`, else py-bson's 0x11 uint64.
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*value) {
            Ok(v) => serializer.serialize_i64(v),
            Err(_) => super::uint64(*value).serialize(serializer),
        }
    }

    /// Reads int32, non-negative int64 or 0x11.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match bson::Bson::deserialize(deserializer)? {
            bson::Bson::Int32(v) => u64::try_from(v).map_err(D::Error::custom),
            bson::Bson::Int64(v) => u64::try_from(v).map_err(D::Error::custom),
            bson::Bson::Timestamp(t) => Ok(super::timestamp_to_u64(t)),
            other => Err(D::Error::custom(format!(
                "expected an integer or py-bson's uint64, found {:?}",
                other.element_type()
            ))),
        }
    }
}
