//! Status flags: the progress of an entity (model, asset, invocation, input, output) through the
//! backend's pipeline (PROTOCOL.md §2), and the numbering of the earlier API (§5).

use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

use super::{default_id, now_rfc3339};

wire_enum! {
    /// StatusFlag.flag_name: one pipeline step.
    pub enum StatusFlagName {
        LogoEfsStaging => "Logo_EFS_Staging",
        LogoS3Storage => "Logo_S3_Storage",
        FileEfsStaging => "File_EFS_Staging",
        FileS3Storage => "File_S3_Storage",
        FileImageBuild => "File_Image_Build",
        InputEfsStaging => "Input_EFS_Staging",
        InputS3Storage => "Input_S3_Storage",
        InputEfsTranscoding => "Input_EFS_Transcoding",
        InputEfsTensor => "Input_EFS_Tensor",
        ModelFunctionRun => "Model_Function_Run",
        OutputEfsStaging => "Output_EFS_Staging",
        OutputS3Storage => "Output_S3_Storage",
    }
}

/// StatusFlag.flag_value, as the current API numbers it. An integer outside 0..=4 is a
/// deserialization error: guessing a state would be worse than failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize_repr, Deserialize_repr)]
#[repr(u8)]
pub enum StatusFlagValue {
    /// Not started (0).
    NotStarted = 0,
    /// Queued (1).
    Enqueued = 1,
    /// Running (2).
    InProgress = 2,
    /// Done (3).
    Finished = 3,
    /// Failed (4).
    Error = 4,
}

impl StatusFlagValue {
    /// From the current numbering (Not_Started=0 ... Error=4); `None` for any other number.
    pub fn from_number(value: i64) -> Option<Self> {
        match value {
            0 => Some(StatusFlagValue::NotStarted),
            1 => Some(StatusFlagValue::Enqueued),
            2 => Some(StatusFlagValue::InProgress),
            3 => Some(StatusFlagValue::Finished),
            4 => Some(StatusFlagValue::Error),
            _ => None,
        }
    }

    /// From the numbering of the earlier API (PROTOCOL.md §5): Error=0, Not_Started=1, Enqueued=2,
    /// In_Progress=3, Finished=4. `None` for any other number.
    pub fn from_legacy(value: i64) -> Option<Self> {
        match value {
            0 => Some(StatusFlagValue::Error),
            1 => Some(StatusFlagValue::NotStarted),
            2 => Some(StatusFlagValue::Enqueued),
            3 => Some(StatusFlagValue::InProgress),
            4 => Some(StatusFlagValue::Finished),
            _ => None,
        }
    }

    /// To the numbering of the earlier API.
    pub fn to_legacy(self) -> i64 {
        match self {
            StatusFlagValue::Error => 0,
            StatusFlagValue::NotStarted => 1,
            StatusFlagValue::Enqueued => 2,
            StatusFlagValue::InProgress => 3,
            StatusFlagValue::Finished => 4,
        }
    }
}

/// `{id, account_id, entity_id, update_time, flag_name, flag_value}`, as `persist/flags/get` returns
/// them (`{entity_id: [StatusFlag]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusFlag {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Id of the entity (model, asset, invocation, input or output) this flag tracks.
    pub entity_id: String,
    /// When the object was last updated (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub update_time: String,
    /// The pipeline step.
    pub flag_name: StatusFlagName,
    /// The step's state.
    pub flag_value: StatusFlagValue,
}

/// A status flag of the earlier API's per-entity routes (`persist/model/flags/get`, ...; PROTOCOL.md
/// §5): `flag_name` is a free string and `flag_value` uses the legacy numbering. It has its own type so
/// that a legacy 4 (Finished) can never be read as the current 4 (Error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyStatusFlag {
    /// The object's id ("0" until the backend assigns one).
    #[serde(default = "default_id")]
    pub id: String,
    /// Id of the account.
    pub account_id: String,
    /// Defaulted to "0" in that version.
    #[serde(default = "default_id")]
    pub entity_id: String,
    /// When the object was last updated (RFC 3339).
    #[serde(default = "now_rfc3339")]
    pub update_time: String,
    /// The pipeline step, as named by that version.
    pub flag_name: String,
    /// Legacy numbering: Error=0, Not_Started=1, Enqueued=2, In_Progress=3, Finished=4.
    pub flag_value: i64,
}

impl LegacyStatusFlag {
    /// The value in the current numbering; `None` when the number is not a legacy value.
    pub fn value(&self) -> Option<StatusFlagValue> {
        StatusFlagValue::from_legacy(self.flag_value)
    }

    /// This flag in the current form; `None` when its value is not a legacy value.
    pub fn to_current(&self) -> Option<StatusFlag> {
        Some(StatusFlag {
            id: self.id.clone(),
            account_id: self.account_id.clone(),
            entity_id: self.entity_id.clone(),
            update_time: self.update_time.clone(),
            flag_name: StatusFlagName::from(self.flag_name.as_str()),
            flag_value: self.value()?,
        })
    }
}

impl From<&StatusFlag> for LegacyStatusFlag {
    fn from(flag: &StatusFlag) -> Self {
        LegacyStatusFlag {
            id: flag.id.clone(),
            account_id: flag.account_id.clone(),
            entity_id: flag.entity_id.clone(),
            update_time: flag.update_time.clone(),
            flag_name: flag.flag_name.as_str().to_owned(),
            flag_value: flag.flag_value.to_legacy(),
        }
    }
}

/// Where an entity stands, judged from all its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityState {
    /// Every flag is Finished (and there is at least one).
    Done,
    /// Some flag is Error.
    Failed,
    /// Anything else, including no flags yet.
    Pending,
}

/// Done when all flags are Finished and there is at least one; Failed when any is Error (even if the
/// others are Finished); Pending otherwise.
pub fn entity_state(flags: &[StatusFlag]) -> EntityState {
    if flags.iter().any(|flag| flag.flag_value == StatusFlagValue::Error) {
        EntityState::Failed
    } else if !flags.is_empty() && flags.iter().all(|flag| flag.flag_value == StatusFlagValue::Finished) {
        EntityState::Done
    } else {
        EntityState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(value: StatusFlagValue) -> StatusFlag {
        StatusFlag {
            id: "f1".into(),
            account_id: "a1".into(),
            entity_id: "e1".into(),
            update_time: "2025-09-15T12:00:00.123456Z".into(),
            flag_name: StatusFlagName::FileS3Storage,
            flag_value: value,
        }
    }

    #[test]
    fn status_flag_round_trips() {
        let wire = json!({
            "id": "f1", "account_id": "a1", "entity_id": "e1",
            "update_time": "2025-09-15T12:00:00.123456Z",
            "flag_name": "File_S3_Storage", "flag_value": 3
        });
        let parsed: StatusFlag = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(parsed, flag(StatusFlagValue::Finished));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), wire);
    }

    #[test]
    fn status_flag_defaults_and_unknown_fields() {
        let parsed: StatusFlag = serde_json::from_value(json!({
            "account_id": "a1", "entity_id": "e1", "flag_name": "Logo_EFS_Staging", "flag_value": 0,
            "some_new_field": [1, 2]
        }))
        .unwrap();
        assert_eq!(parsed.id, "0");
        assert_eq!(parsed.update_time.len(), "2025-09-15T12:00:00.123456Z".len());
        assert_eq!(parsed.flag_name, StatusFlagName::LogoEfsStaging);
        assert_eq!(parsed.flag_value, StatusFlagValue::NotStarted);
        // entity_id is required in the current API.
        assert!(serde_json::from_value::<StatusFlag>(
            json!({"account_id": "a1", "flag_name": "Logo_EFS_Staging", "flag_value": 0})
        )
        .is_err());
    }

    #[test]
    fn flag_names_are_the_twelve_of_the_protocol() {
        let names: Vec<&str> = StatusFlagName::KNOWN.iter().map(StatusFlagName::as_str).collect();
        assert_eq!(
            names,
            [
                "Logo_EFS_Staging",
                "Logo_S3_Storage",
                "File_EFS_Staging",
                "File_S3_Storage",
                "File_Image_Build",
                "Input_EFS_Staging",
                "Input_S3_Storage",
                "Input_EFS_Transcoding",
                "Input_EFS_Tensor",
                "Model_Function_Run",
                "Output_EFS_Staging",
                "Output_S3_Storage",
            ]
        );
        let newer: StatusFlagName = serde_json::from_str("\"Output_Glacier_Storage\"").unwrap();
        assert_eq!(newer, StatusFlagName::Other("Output_Glacier_Storage".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"Output_Glacier_Storage\"");
    }

    #[test]
    fn flag_values_are_integers_zero_to_four() {
        let expected = [
            StatusFlagValue::NotStarted,
            StatusFlagValue::Enqueued,
            StatusFlagValue::InProgress,
            StatusFlagValue::Finished,
            StatusFlagValue::Error,
        ];
        for (number, value) in expected.into_iter().enumerate() {
            assert_eq!(serde_json::from_str::<StatusFlagValue>(&number.to_string()).unwrap(), value);
            assert_eq!(serde_json::to_string(&value).unwrap(), number.to_string());
        }
        for bad in ["5", "-1", "255", "\"Finished\"", "3.0", "null"] {
            assert!(serde_json::from_str::<StatusFlagValue>(bad).is_err(), "{bad}");
        }
        let error = serde_json::from_value::<StatusFlag>(json!({
            "account_id": "a", "entity_id": "e", "flag_name": "File_S3_Storage", "flag_value": 5
        }))
        .unwrap_err();
        assert!(error.to_string().contains('5'), "{error}");
    }

    #[test]
    fn legacy_numbering_converts_both_ways() {
        let pairs = [
            (0, StatusFlagValue::Error),
            (1, StatusFlagValue::NotStarted),
            (2, StatusFlagValue::Enqueued),
            (3, StatusFlagValue::InProgress),
            (4, StatusFlagValue::Finished),
        ];
        for (legacy, value) in pairs {
            assert_eq!(StatusFlagValue::from_legacy(legacy), Some(value));
            assert_eq!(value.to_legacy(), legacy);
            assert_eq!(StatusFlagValue::from_number(value as i64), Some(value));
        }
        assert_eq!(StatusFlagValue::from_number(5), None);
        assert_eq!(StatusFlagValue::from_legacy(5), None);
        assert_eq!(StatusFlagValue::from_legacy(-1), None);
    }

    #[test]
    fn legacy_flags_convert_to_current_flags() {
        // The earlier API: free-string flag_name, entity_id defaulted, legacy numbering.
        let legacy: LegacyStatusFlag = serde_json::from_value(json!({
            "account_id": "a1", "update_time": "2025-09-15T12:00:00Z",
            "flag_name": "EFS_Transfer", "flag_value": 4
        }))
        .unwrap();
        assert_eq!(legacy.entity_id, "0");
        let current = legacy.to_current().unwrap();
        assert_eq!(current.flag_value, StatusFlagValue::Finished);
        assert_eq!(current.flag_name, StatusFlagName::Other("EFS_Transfer".into()));
        assert_eq!(LegacyStatusFlag::from(&current), legacy);

        let back = LegacyStatusFlag::from(&flag(StatusFlagValue::Error));
        assert_eq!(back.flag_value, 0);
        assert_eq!(back.flag_name, "File_S3_Storage");
        assert_eq!(serde_json::to_value(&back).unwrap()["flag_value"], json!(0));

        let odd = LegacyStatusFlag { flag_value: 9, ..back };
        assert_eq!(odd.to_current(), None);
    }

    #[test]
    fn entity_state_follows_the_flags() {
        use StatusFlagValue::*;
        let state =
            |values: &[StatusFlagValue]| entity_state(&values.iter().copied().map(flag).collect::<Vec<_>>());
        assert_eq!(state(&[]), EntityState::Pending);
        assert_eq!(state(&[Finished]), EntityState::Done);
        assert_eq!(state(&[Finished, Finished]), EntityState::Done);
        assert_eq!(state(&[Finished, InProgress]), EntityState::Pending);
        assert_eq!(state(&[NotStarted, Enqueued]), EntityState::Pending);
        assert_eq!(state(&[Finished, Error]), EntityState::Failed);
        assert_eq!(state(&[Error, InProgress]), EntityState::Failed);
    }
}
