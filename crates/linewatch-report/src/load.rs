//! Reading one machine's rows from the scores table, pruning partitions by date.

use linewatch_tables::scores as S;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::error::ReportError;

const MS_PER_DAY: i64 = 86_400_000;

/// One scored window of the machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub start_ms: i64,
    pub end_ms: i64,
    pub line: String,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub alert: bool,
    pub model_version: Option<String>,
    pub defect_prob: Option<f64>,
    /// `(feature, contribution)` from `top_features`; empty when null or unreadable.
    pub top: Vec<(String, f64)>,
}

#[derive(Deserialize)]
struct Contribution {
    name: String,
    contribution: f64,
}

/// Milliseconds since the epoch, saturating far outside the table's range.
pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Whether a `date=` partition can hold windows starting in `[from, to)`. Rows land in
/// the partition of their `window_start`'s UTC date, so the partition covers
/// `[date 00:00, date+1 00:00)`. A value that is not a date is kept (the row filter
/// decides).
pub(crate) fn date_may_overlap(date: &str, from_ms: Option<i64>, to_ms: Option<i64>) -> bool {
    let Ok(day) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
        return true;
    };
    let day_start = day
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis());
    let Some(day_start) = day_start else {
        return true;
    };
    let day_end = day_start.saturating_add(MS_PER_DAY);
    from_ms.is_none_or(|f| day_end > f) && to_ms.is_none_or(|t| day_start < t)
}

/// Values of the machine's rows in range that the report could not use as they are, by
/// reason; `linewatch report` prints them in its summary (nothing is dropped silently).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unusable {
    /// Rows whose `window_start` is null: not drawn.
    pub rows_without_start: usize,
    /// `window_end` null or before the start: drawn as a zero-length window.
    pub bad_window_end: usize,
    /// NaN or infinite `anomaly_score`, `threshold` or `defect_prob`: drawn as gaps.
    pub non_finite_values: usize,
    /// `top_features` texts that are not the documented JSON list, or contributions that
    /// are not finite: left out of the contribution panel.
    pub unreadable_top_features: usize,
}

/// Reads the rows of `machine` whose `window_start` lies in `[from, to)`, sorted by time,
/// and counts what could not be used ([`Unusable`]). Only those of the table's `files` in
/// `date=` partitions that can hold such rows are opened.
pub(crate) fn load_rows(
    files: Vec<linewatch_sink::FileInfo>,
    machine: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<(Vec<Row>, Unusable), ReportError> {
    let mut rows = Vec::new();
    let mut unusable = Unusable::default();
    for info in files {
        if !date_may_overlap(&info.date, from_ms, to_ms) {
            continue;
        }
        let path_line =
            linewatch_sink::decode_partition_value(&info.line).unwrap_or_else(|| info.line.clone());
        // Errors name the file by its path or URL.
        let file = std::path::PathBuf::from(info.location.to_string());
        for batch in linewatch_sink::read_file(&info.location)? {
            let range = (from_ms, to_ms);
            extract(
                &batch,
                &file,
                &path_line,
                machine,
                range,
                &mut rows,
                &mut unusable,
            )?;
        }
    }
    rows.sort_by_key(|r| (r.start_ms, r.end_ms));
    Ok((rows, unusable))
}

fn extract(
    batch: &RecordBatch,
    path: &Path,
    path_line: &str,
    machine: &str,
    (from_ms, to_ms): (Option<i64>, Option<i64>),
    out: &mut Vec<Row>,
    unusable: &mut Unusable,
) -> Result<(), ReportError> {
    let col = |name: &'static str| batch.column_by_name(name).map(|c| c.as_ref());
    let required = |name: &'static str| {
        col(name).ok_or_else(|| ReportError::MissingColumn {
            path: path.to_path_buf(),
            column: name,
        })
    };
    let machines = strings(required(S::MACHINE)?, path, S::MACHINE)?;
    let starts = timestamps(required(S::WINDOW_START)?, path, S::WINDOW_START)?;
    let ends = match col(S::WINDOW_END) {
        Some(c) => timestamps(c, path, S::WINDOW_END)?,
        None => starts.clone(),
    };
    let scores = floats(required(S::ANOMALY_SCORE)?, path, S::ANOMALY_SCORE)?;
    let alerts = bools(required(S::ALERT)?, path, S::ALERT)?;
    let n = batch.num_rows();
    let optional_floats = |name: &'static str| match col(name) {
        Some(c) => floats(c, path, name),
        None => Ok(vec![None; n]),
    };
    let optional_strings = |name: &'static str| match col(name) {
        Some(c) => strings(c, path, name),
        None => Ok(vec![None; n]),
    };
    let thresholds = optional_floats(S::THRESHOLD)?;
    let defect = optional_floats(S::DEFECT_PROB)?;
    let versions = optional_strings(S::MODEL_VERSION)?;
    let tops = optional_strings(S::TOP_FEATURES)?;
    let lines = optional_strings(S::LINE)?;

    for i in 0..n {
        if machines[i] != Some(machine) {
            continue;
        }
        let Some(start_ms) = starts[i] else {
            unusable.rows_without_start += 1;
            continue;
        };
        if from_ms.is_some_and(|f| start_ms < f) || to_ms.is_some_and(|t| start_ms >= t) {
            continue;
        }
        let end_ms = match ends[i].filter(|&e| e >= start_ms) {
            Some(e) => e,
            None => {
                unusable.bad_window_end += 1;
                start_ms
            }
        };
        let mut finite = |v: Option<f64>| match v {
            Some(x) if !x.is_finite() => {
                unusable.non_finite_values += 1;
                None
            }
            v => v,
        };
        let (score, threshold, defect_prob) =
            (finite(scores[i]), finite(thresholds[i]), finite(defect[i]));
        let top = match tops[i].map(serde_json::from_str::<Vec<Contribution>>) {
            None => Vec::new(),
            Some(Ok(list)) if list.iter().all(|c| c.contribution.is_finite()) => {
                list.into_iter().map(|c| (c.name, c.contribution)).collect()
            }
            Some(_) => {
                unusable.unreadable_top_features += 1;
                Vec::new()
            }
        };
        out.push(Row {
            start_ms,
            end_ms,
            line: lines[i].unwrap_or(path_line).to_owned(),
            score,
            threshold,
            alert: alerts[i],
            model_version: versions[i].map(str::to_owned),
            defect_prob,
            top,
        });
    }
    Ok(())
}

fn strings<'a>(
    a: &'a dyn Array,
    path: &Path,
    column: &'static str,
) -> Result<Vec<Option<&'a str>>, ReportError> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().collect(),
        DataType::Utf8View => a.as_string_view().iter().collect(),
        other => return Err(wrong(path, column, "Utf8", other)),
    })
}

/// Timestamps of any unit as milliseconds (sub-millisecond parts are floored).
fn timestamps(
    a: &dyn Array,
    path: &Path,
    column: &'static str,
) -> Result<Vec<Option<i64>>, ReportError> {
    Ok(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => a
            .as_primitive::<TimestampSecondType>()
            .iter()
            .map(|v| v.and_then(|s| s.checked_mul(1000)))
            .collect(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .collect(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|v| v.map(|us| us.div_euclid(1000)))
            .collect(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => a
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .map(|v| v.map(|ns| ns.div_euclid(1_000_000)))
            .collect(),
        other => {
            return Err(wrong(
                path,
                column,
                "Timestamp(Millisecond, \"UTC\")",
                other,
            ));
        }
    })
}

/// Float64 or Float32 values as stored (NaN and infinities included: the caller counts them).
fn floats(
    a: &dyn Array,
    path: &Path,
    column: &'static str,
) -> Result<Vec<Option<f64>>, ReportError> {
    let v: Vec<Option<f64>> = match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(f64::from))
            .collect(),
        DataType::Null => vec![None; a.len()],
        other => return Err(wrong(path, column, "Float64", other)),
    };
    Ok(v)
}

/// Booleans; null reads as false.
fn bools(a: &dyn Array, path: &Path, column: &'static str) -> Result<Vec<bool>, ReportError> {
    match a.data_type() {
        DataType::Boolean => Ok(a.as_boolean().iter().map(|v| v.unwrap_or(false)).collect()),
        other => Err(wrong(path, column, "Boolean", other)),
    }
}

fn wrong(
    path: &Path,
    column: &'static str,
    expected: &'static str,
    found: &DataType,
) -> ReportError {
    ReportError::WrongColumnType {
        path: path.to_path_buf(),
        column,
        expected,
        found: found.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn date_pruning() {
        let from = Some(ms("2026-11-28T12:00:00Z"));
        let to = Some(ms("2026-11-29T00:00:00Z"));
        assert!(!date_may_overlap("2026-11-27", from, to));
        assert!(date_may_overlap("2026-11-28", from, to));
        // `to` is exclusive: a range ending at midnight does not reach the next day.
        assert!(!date_may_overlap("2026-11-29", from, to));
        assert!(date_may_overlap(
            "2026-11-29",
            from,
            Some(ms("2026-11-29T00:00:01Z"))
        ));
        assert!(date_may_overlap("2026-11-29", None, None));
        assert!(date_may_overlap("2020-01-01", None, to));
        assert!(!date_may_overlap("2020-01-01", from, None));
        // Not a date: kept, the row filter decides.
        assert!(date_may_overlap("__HIVE_DEFAULT_PARTITION__", from, to));
    }
}
