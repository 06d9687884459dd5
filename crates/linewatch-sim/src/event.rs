//! Simulated events and their JSON messages (the reading and inspection contracts).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::config::TsFormat;

/// One sensor reading of one machine.
///
/// Names are shared `Arc<str>`s so that producing a reading allocates only its `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReading {
    /// Line name.
    pub line: Arc<str>,
    /// Machine id (also the Kafka key).
    pub machine: Arc<str>,
    /// Event time, epoch ms.
    pub ts_ms: i64,
    /// `(channel, value)` in channel order; values are always finite.
    pub values: Vec<(Arc<str>, f64)>,
}

/// One inspection label of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimInspection {
    /// Line name.
    pub line: Arc<str>,
    /// Machine id (also the Kafka key).
    pub machine: Arc<str>,
    /// Event time, epoch ms.
    pub ts_ms: i64,
    /// Whether the inspection found a defect.
    pub defect: bool,
}

/// What the simulator emits.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    /// For the readings topic.
    Reading(SimReading),
    /// For the inspections topic.
    Inspection(SimInspection),
}

/// Timestamp in the message: RFC 3339 string or integer epoch ms.
#[derive(Clone)]
enum Ts {
    Text(String),
    Ms(i64),
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Ms(ms) => s.serialize_i64(*ms),
        }
    }
}

fn ts(ts_ms: i64, format: TsFormat) -> Ts {
    match format {
        TsFormat::Rfc3339 => match rfc3339_ms(ts_ms) {
            Some(t) => Ts::Text(t),
            // Out of chrono's range: still a valid message under the contract.
            None => Ts::Ms(ts_ms),
        },
        TsFormat::EpochMs => Ts::Ms(ts_ms),
    }
}

/// `2026-11-28T12:00:00.123Z` for an epoch-ms time; `None` when out of range.
pub fn rfc3339_ms(ts_ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ts_ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

struct Values<'a>(&'a [(Arc<str>, f64)]);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ReadingMsg<'a> {
    line: &'a str,
    machine: &'a str,
    ts: Ts,
    values: Values<'a>,
}

#[derive(Serialize)]
struct LongMsg<'a> {
    line: &'a str,
    machine: &'a str,
    ts: Ts,
    tag: &'a str,
    value: f64,
}

#[derive(Serialize)]
struct InspectionMsg<'a> {
    line: &'a str,
    machine: &'a str,
    ts: Ts,
    defect: bool,
}

fn to_string<T: Serialize>(msg: &T) -> String {
    // Only strings, integers, booleans and finite floats: serialisation cannot fail.
    serde_json::to_string(msg).unwrap_or_default()
}

impl SimReading {
    /// The reading message with an RFC 3339 timestamp:
    /// `{"line":"press-3","machine":"m-017","ts":"2026-11-28T12:00:00.123Z","values":{"temp_c":71.2}}`.
    pub fn to_json(&self) -> String {
        self.to_json_with(TsFormat::Rfc3339)
    }

    /// The reading message with the timestamp in the given format.
    pub fn to_json_with(&self, format: TsFormat) -> String {
        to_string(&ReadingMsg {
            line: &self.line,
            machine: &self.machine,
            ts: ts(self.ts_ms, format),
            values: Values(&self.values),
        })
    }

    /// The reading in the long format, one message per channel (RFC 3339 timestamps), in the
    /// default `json_long` field mapping:
    /// `{"line":"press-3","machine":"m-017","ts":"2026-11-28T12:00:00.123Z","tag":"temp_c","value":71.2}`.
    pub fn to_long_json(&self) -> Vec<String> {
        let ts = ts(self.ts_ms, TsFormat::Rfc3339);
        self.values
            .iter()
            .map(|(tag, value)| {
                to_string(&LongMsg {
                    line: &self.line,
                    machine: &self.machine,
                    ts: ts.clone(),
                    tag,
                    value: *value,
                })
            })
            .collect()
    }

    /// The value of a channel, if the reading has it.
    pub fn value(&self, channel: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| k.as_ref() == channel)
            .map(|(_, v)| *v)
    }
}

impl SimInspection {
    /// The inspection message with an RFC 3339 timestamp:
    /// `{"line":"press-3","machine":"m-017","ts":"2026-11-28T12:00:00.123Z","defect":true}`.
    pub fn to_json(&self) -> String {
        self.to_json_with(TsFormat::Rfc3339)
    }

    /// The inspection message with the timestamp in the given format.
    pub fn to_json_with(&self, format: TsFormat) -> String {
        to_string(&InspectionMsg {
            line: &self.line,
            machine: &self.machine,
            ts: ts(self.ts_ms, format),
            defect: self.defect,
        })
    }
}

impl SimEvent {
    /// The message for this event's topic, RFC 3339 timestamp.
    pub fn to_json(&self) -> String {
        self.to_json_with(TsFormat::Rfc3339)
    }

    /// The message for this event's topic, timestamp in the given format.
    pub fn to_json_with(&self, format: TsFormat) -> String {
        match self {
            Self::Reading(r) => r.to_json_with(format),
            Self::Inspection(i) => i.to_json_with(format),
        }
    }

    /// Machine id (the Kafka key).
    pub fn machine(&self) -> &str {
        match self {
            Self::Reading(r) => &r.machine,
            Self::Inspection(i) => &i.machine,
        }
    }

    /// Line name.
    pub fn line(&self) -> &str {
        match self {
            Self::Reading(r) => &r.line,
            Self::Inspection(i) => &i.line,
        }
    }

    /// Event time, epoch ms.
    pub fn ts_ms(&self) -> i64 {
        match self {
            Self::Reading(r) => r.ts_ms,
            Self::Inspection(i) => i.ts_ms,
        }
    }

    /// The reading, if this is one.
    pub fn as_reading(&self) -> Option<&SimReading> {
        match self {
            Self::Reading(r) => Some(r),
            Self::Inspection(_) => None,
        }
    }

    /// The inspection, if this is one.
    pub fn as_inspection(&self) -> Option<&SimInspection> {
        match self {
            Self::Reading(_) => None,
            Self::Inspection(i) => Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_json_matches_contract_example() {
        let r = SimReading {
            line: "press-3".into(),
            machine: "m-17".into(),
            ts_ms: 1_795_867_200_123,
            values: vec![("temp_c".into(), 71.2), ("vib_rms".into(), 0.031)],
        };
        assert_eq!(
            r.to_json(),
            r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.123Z","values":{"temp_c":71.2,"vib_rms":0.031}}"#
        );
        assert_eq!(
            r.to_json_with(TsFormat::EpochMs),
            r#"{"line":"press-3","machine":"m-17","ts":1795867200123,"values":{"temp_c":71.2,"vib_rms":0.031}}"#
        );
        assert_eq!(r.value("vib_rms"), Some(0.031));
        assert_eq!(r.value("nope"), None);
    }

    #[test]
    fn inspection_json_matches_contract() {
        let i = SimInspection {
            line: "press-3".into(),
            machine: "m-17".into(),
            ts_ms: 1_795_867_200_000,
            defect: true,
        };
        assert_eq!(
            i.to_json(),
            r#"{"line":"press-3","machine":"m-17","ts":"2026-11-28T12:00:00.000Z","defect":true}"#
        );
        let e = SimEvent::Inspection(i);
        assert_eq!(e.machine(), "m-17");
        assert_eq!(e.line(), "press-3");
        assert_eq!(e.ts_ms(), 1_795_867_200_000);
        assert!(e.as_reading().is_none());
    }

    #[test]
    fn names_are_escaped() {
        let r = SimReading {
            line: "a\"b".into(),
            machine: "m\\1".into(),
            ts_ms: 0,
            values: vec![("t\n".into(), -1.5)],
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["line"], "a\"b");
        assert_eq!(v["machine"], "m\\1");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["values"]["t\n"], -1.5);
    }

    #[test]
    fn out_of_range_ts_falls_back_to_epoch_ms() {
        let r = SimInspection {
            line: "l".into(),
            machine: "m".into(),
            ts_ms: i64::MAX,
            defect: false,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["ts"], i64::MAX);
    }
}
