//! # linewatch-tables
//!
//! The output tables of a pipeline, defined once: each table's folder name, the column it is
//! partitioned by, its column names and types ([`scores`], [`alerts`], [`labels`]), and typed
//! readers ([`read`]) that name the file's missing or mistyped column. The writer
//! (`linewatch-runtime`'s `output.rs`), `linewatch train`, the demo's summary,
//! `linewatch report` and the tests all take names from here, so a new column is one edit here,
//! one in the writer, and its test.
//!
//! The window's key and feature columns are the window crate's ([`linewatch_window::FeatureSchema`]).

use arrow_schema::{DataType, TimeUnit};

/// Millisecond UTC timestamps, the type of every time column.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// `OUT/scores/`: one row per window: the window's key and feature columns, then the score
/// columns ([`scores::score_fields`]).
pub mod scores {
    use arrow_schema::{DataType, Field, Schema};
    use linewatch_window::FeatureSchema;

    pub use linewatch_window::{
        COL_LINE as LINE, COL_MACHINE as MACHINE, COL_N_READINGS as N_READINGS,
        COL_WINDOW_END as WINDOW_END, COL_WINDOW_START as WINDOW_START,
    };

    /// The table's folder under `sink.out`.
    pub const TABLE: &str = "scores";
    /// The column whose date names the `date=` partition.
    pub const PARTITION_TIME: &str = WINDOW_START;
    /// False when the window was closed before its end (idle eviction).
    pub const COMPLETE: &str = "complete";
    /// The log-density drop from the training centre, in nats.
    pub const ANOMALY_SCORE: &str = "anomaly_score";
    /// The serving model's alert threshold.
    pub const THRESHOLD: &str = "threshold";
    /// Conformal p-value against the model's calibration windows.
    pub const P_VALUE: &str = "p_value";
    /// `-anomaly_score`.
    pub const LOG_DENSITY_REL: &str = "log_density_rel";
    /// The isotonic model's defect probability.
    pub const DEFECT_PROB: &str = "defect_prob";
    /// Whether the machine had an open alert after this window.
    pub const ALERT: &str = "alert";
    /// The version that scored the window.
    pub const MODEL_VERSION: &str = "model_version";
    /// JSON text: the features with the most negative contributions.
    pub const TOP_FEATURES: &str = "top_features";

    /// The columns after the features, in order.
    pub fn score_fields() -> Vec<Field> {
        vec![
            Field::new(COMPLETE, DataType::Boolean, false),
            Field::new(ANOMALY_SCORE, DataType::Float64, true),
            Field::new(THRESHOLD, DataType::Float64, true),
            Field::new(P_VALUE, DataType::Float64, true),
            Field::new(LOG_DENSITY_REL, DataType::Float64, true),
            Field::new(DEFECT_PROB, DataType::Float64, true),
            Field::new(ALERT, DataType::Boolean, false),
            Field::new(MODEL_VERSION, DataType::Utf8, true),
            Field::new(TOP_FEATURES, DataType::Utf8, true),
        ]
    }

    /// The whole schema for the window features of `features`.
    pub fn schema(features: &FeatureSchema) -> Schema {
        let mut fields: Vec<Field> = features
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(score_fields());
        Schema::new(fields)
    }
}

/// `OUT/alerts/`: one row per alert message (the same fields as the message).
pub mod alerts {
    use arrow_schema::{DataType, Field, Schema};

    pub use super::scores::{
        ANOMALY_SCORE, DEFECT_PROB, LINE, MACHINE, MODEL_VERSION, P_VALUE, THRESHOLD, TOP_FEATURES,
        WINDOW_END, WINDOW_START,
    };

    /// The table's folder under `sink.out`.
    pub const TABLE: &str = "alerts";
    /// The column whose date names the `date=` partition.
    pub const PARTITION_TIME: &str = WINDOW_START;
    /// UUID v5 of pipeline, line, machine, opening window and model version.
    pub const ALERT_ID: &str = "alert_id";
    /// `open` or `resolved`.
    pub const STATE: &str = "state";

    /// The alerts table's schema.
    pub fn schema() -> Schema {
        Schema::new(vec![
            Field::new(ALERT_ID, DataType::Utf8, false),
            Field::new(LINE, DataType::Utf8, false),
            Field::new(MACHINE, DataType::Utf8, false),
            Field::new(WINDOW_START, super::ts_type(), false),
            Field::new(WINDOW_END, super::ts_type(), false),
            Field::new(STATE, DataType::Utf8, false),
            Field::new(ANOMALY_SCORE, DataType::Float64, false),
            Field::new(THRESHOLD, DataType::Float64, false),
            Field::new(P_VALUE, DataType::Float64, true),
            Field::new(DEFECT_PROB, DataType::Float64, true),
            Field::new(TOP_FEATURES, DataType::Utf8, false),
            Field::new(MODEL_VERSION, DataType::Utf8, false),
        ])
    }
}

/// `OUT/labels/`: inspection results as consumed (the isotonic model's training labels).
pub mod labels {
    use arrow_schema::{DataType, Field, Schema};

    pub use super::scores::{LINE, MACHINE};

    /// The table's folder under `sink.out`.
    pub const TABLE: &str = "labels";
    /// The inspection's event time.
    pub const TS: &str = "ts";
    /// The column whose date names the `date=` partition.
    pub const PARTITION_TIME: &str = TS;
    /// Whether the inspected part was defective.
    pub const DEFECT: &str = "defect";

    /// The labels table's schema.
    pub fn schema() -> Schema {
        Schema::new(vec![
            Field::new(LINE, DataType::Utf8, false),
            Field::new(MACHINE, DataType::Utf8, false),
            Field::new(TS, super::ts_type(), false),
            Field::new(DEFECT, DataType::Boolean, false),
        ])
    }
}

/// Typed column access on a batch read back from a table.
pub mod read {
    use arrow_array::{Array, Float32Array, Float64Array, RecordBatch};

    /// A column that is missing or not of the type the table defines.
    #[derive(Debug, thiserror::Error)]
    pub enum ColumnError {
        /// The file has no such column.
        #[error("no column `{0}`")]
        Missing(String),
        /// The column has another type.
        #[error("column `{column}` is {found}, expected {expected}")]
        WrongType {
            /// The column.
            column: String,
            /// Its Arrow type.
            found: String,
            /// The type expected.
            expected: String,
        },
    }

    /// The column `name` as the array type `T`.
    ///
    /// # Errors
    /// [`ColumnError`] naming the column.
    pub fn column<'a, T: Array + 'static>(
        b: &'a RecordBatch,
        name: &str,
    ) -> Result<&'a T, ColumnError> {
        optional::<T>(b, name)?.ok_or_else(|| ColumnError::Missing(name.to_owned()))
    }

    /// The column `name` as `T` when the file has it (columns added in later releases).
    ///
    /// # Errors
    /// The column exists with another type.
    pub fn optional<'a, T: Array + 'static>(
        b: &'a RecordBatch,
        name: &str,
    ) -> Result<Option<&'a T>, ColumnError> {
        let Some(a) = b.column_by_name(name) else {
            return Ok(None);
        };
        a.as_any()
            .downcast_ref::<T>()
            .map(Some)
            .ok_or_else(|| ColumnError::WrongType {
                column: name.to_owned(),
                found: a.data_type().to_string(),
                expected: short_type_name(std::any::type_name::<T>()),
            })
    }

    /// `a::b::PrimitiveArray<a::c::Float64Type>` as `PrimitiveArray<Float64Type>`.
    fn short_type_name(full: &str) -> String {
        let mut out = String::new();
        let mut word = String::new();
        for c in full.chars() {
            if c.is_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
            } else {
                out.push_str(word.rsplit("::").next().unwrap_or_default());
                word.clear();
                out.push(c);
            }
        }
        out.push_str(word.rsplit("::").next().unwrap_or_default());
        out
    }

    /// A float column as f64, NaN where null: Float64 as written, or Float32 as stored by
    /// releases before features were f64 (read exactly as stored).
    ///
    /// # Errors
    /// The column is missing or of another type.
    pub fn floats(b: &RecordBatch, name: &str) -> Result<Vec<f64>, ColumnError> {
        if let Some(c) = optional::<Float64Array>(b, name).ok().flatten() {
            return Ok((0..c.len())
                .map(|i| if c.is_null(i) { f64::NAN } else { c.value(i) })
                .collect());
        }
        let c = column::<Float32Array>(b, name).map_err(|e| match e {
            ColumnError::WrongType { column, found, .. } => ColumnError::WrongType {
                column,
                found,
                expected: "Float64 (or Float32)".to_owned(),
            },
            missing => missing,
        })?;
        Ok((0..c.len())
            .map(|i| {
                if c.is_null(i) {
                    f64::NAN
                } else {
                    f64::from(c.value(i))
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float32Array, Float64Array, RecordBatch, StringArray};

    use super::*;

    #[test]
    fn the_schemas_hold_the_named_columns_once_each() {
        let channels = Arc::new(
            linewatch_window::ChannelSet::new(["x"]).unwrap_or_else(|e| {
                panic!("{e}");
            }),
        );
        let s = scores::schema(&linewatch_window::FeatureSchema::new(channels));
        for name in [
            scores::MACHINE,
            scores::COMPLETE,
            scores::ANOMALY_SCORE,
            "x__mean",
        ] {
            assert_eq!(
                s.fields().iter().filter(|f| f.name() == name).count(),
                1,
                "{name}"
            );
        }
        let a = alerts::schema();
        assert_eq!(a.field(0).name(), alerts::ALERT_ID);
        assert_eq!(labels::schema().field(2).name(), labels::TS);
        assert_eq!(alerts::PARTITION_TIME, "window_start");
        assert_eq!(labels::PARTITION_TIME, "ts");
    }

    #[test]
    fn readers_name_the_column_and_read_both_float_widths() {
        let b = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(Float32Array::from(vec![2.5f32, 3.0])) as ArrayRef,
            ),
            ("s", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let a = read::floats(&b, "a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a[0], 1.5);
        assert!(a[1].is_nan());
        assert_eq!(
            read::floats(&b, "b").unwrap_or_else(|e| panic!("{e}")),
            vec![2.5, 3.0]
        );
        let e = read::floats(&b, "s").unwrap_err().to_string();
        assert!(e.contains("`s`") && e.contains("Utf8"), "{e}");
        let e = read::column::<StringArray>(&b, "zz")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no column `zz`");
        assert!(
            read::optional::<StringArray>(&b, "zz")
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
        let e = read::column::<Float64Array>(&b, "s")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("expected PrimitiveArray<Float64Type>"), "{e}");
    }
}
