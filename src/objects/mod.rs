//! The Norman objects: serde types for every JSON body of PROTOCOL.md, following
//! `schemas/norman_objects.json` (generated from the real pydantic models).
//!
//! Wire rules (PROTOCOL.md §1): snake_case field names exactly as in the schema; unknown keys are
//! ignored on input; every field is written on output (`null` for absent optionals). Fields with a
//! schema default are `#[serde(default)]`, so that objects of the earlier published API (§5), which
//! carry fewer fields, still deserialize. Ids and datetimes are strings, as sent.
//!
//! Datetimes without a value (`creation_time`, `update_time`) are neither required nor nullable in the
//! schema: pydantic fills them with the current UTC time. They do the same here ([`now_rfc3339`]), so an
//! object built or received without one still serializes to something a real backend accepts.

#[macro_use]
mod wire_enum;

mod accounts;
mod files;
mod flags;
mod invocations;
mod models;
mod query;
pub mod secret;

pub use accounts::{
    Account, AccountAuthenticationMethods, AccountIdPasswordLoginRequest, AccountUpdate, ApiKeyLoginRequest,
    EmailOtpLoginRequest, EmailOtpVerificationRequest, EmailPasswordLoginRequest, LoginResponse,
    NamePasswordLoginRequest, RegisterAuthFactorRequest, UpdateAccountsRequest,
};
pub use files::{
    AssetDownloadRequest, ChecksumRequest, InputDownloadRequest, NormanFileDownloadRequest,
    OutputDownloadRequest, SocketAssetPairingRequest, SocketInputPairingRequest, TrackedAssetDownload,
    TrackedDownload, TrackedInputDownload, TrackedOutputDownload,
};
pub use flags::{entity_state, EntityState, LegacyStatusFlag, StatusFlag, StatusFlagName, StatusFlagValue};
pub use invocations::{Invocation, InvocationSignature, Notification};
pub use models::{
    AggregateTag, DataModality, GetModelsRequest, HttpLocation, HttpRequestType, Model, ModelAsset,
    ModelBase, ModelBuildStatus, ModelHostingLocation, ModelParam, ModelPreview, ModelSignature, ModelTag,
    ModelType, OutputFormat, ReceiveFormat, SignatureTransform, SignatureType,
};
pub use query::{
    BinaryRelation, FilterChild, FilterClause, FilterNode, FilterScalar, FilterValue, PageClause,
    QueryConstraints, SortClause, SortDirection, SortNode, UnaryRelation,
};

/// Defined with the upload socket; re-exported here so every wire object has one home.
pub use crate::socket::SocketPairingResponse;

/// An answer that is `[T]` from the current API or `{id: T}` from the earlier one (PROTOCOL.md §2,
/// §5: the model writes), as the items in the order received. A client cannot know which generation
/// of backend it talks to, so it reads both.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListOrMap<T>(pub Vec<T>);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ListOrMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Items<T> {
            type Value = ListOrMap<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of objects or a map of id to object")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // The hint comes from the peer: cap what it may make us reserve.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ListOrMap(items))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
                while let Some((_, item)) = map.next_entry::<serde::de::IgnoredAny, T>()? {
                    items.push(item);
                }
                Ok(ListOrMap(items))
            }
        }

        deserializer.deserialize_any(Items(std::marker::PhantomData))
    }
}

/// The default of every `id` field: "0" means "not assigned yet, the backend assigns one".
pub(crate) fn default_id() -> String {
    String::from("0")
}

pub(crate) fn default_true() -> bool {
    true
}

/// The current UTC time in RFC 3339 with microseconds (`2025-09-15T12:00:00.123456Z`), the form
/// pydantic writes; the default of datetime fields, as pydantic's `default_factory` is.
pub fn now_rfc3339() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_unix_micros(since_epoch.as_secs(), since_epoch.subsec_micros())
}

/// RFC 3339 UTC of a Unix time (seconds + microseconds). Days to civil date: Howard Hinnant's
/// `civil_from_days`, valid for every date after 1970.
fn format_unix_micros(secs: u64, micros: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);

    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);

    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z")
}

/// For `Option<bool>`-in-Python fields read as `bool`: `null` is the default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_format_as_rfc3339_utc() {
        assert_eq!(format_unix_micros(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_unix_micros(1_757_937_600, 123_456), "2025-09-15T12:00:00.123456Z");
        // Leap day, end of year, and a date past 2100 (not a leap year).
        assert_eq!(format_unix_micros(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(format_unix_micros(1_735_689_599, 999_999), "2024-12-31T23:59:59.999999Z");
        assert_eq!(format_unix_micros(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn list_or_map_reads_both_shapes_in_order() {
        let list: ListOrMap<i64> = serde_json::from_str("[3, 1, 2]").unwrap();
        assert_eq!(list.0, [3, 1, 2]);
        // Keys in document order, not sorted.
        let map: ListOrMap<i64> = serde_json::from_str(r#"{"z": 3, "a": 1, "m": 2}"#).unwrap();
        assert_eq!(map.0, [3, 1, 2]);
        assert_eq!(serde_json::from_str::<ListOrMap<i64>>("{}").unwrap().0, Vec::<i64>::new());
        for bad in ["3", "null", "\"x\"", r#"{"a": "x"}"#, r#"["x"]"#] {
            assert!(serde_json::from_str::<ListOrMap<i64>>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn now_looks_like_a_datetime() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2025-09-15T12:00:00.123456Z".len());
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
        assert!(now.as_str() > "2025-01-01");
    }
}
