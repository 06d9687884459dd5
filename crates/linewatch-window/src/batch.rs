//! Closed windows as an Arrow `RecordBatch`, and as a dense row-major matrix.
//!
//! The schema is defined here and only here ([`FeatureSchema`]):
//!
//! | column | type | nullable |
//! |---|---|---|
//! | `line` | Utf8 | no |
//! | `machine` | Utf8 | no |
//! | `window_start` | Timestamp(ms, "UTC") | no |
//! | `window_end` | Timestamp(ms, "UTC") | no |
//! | `n_readings` | UInt32 | no |
//! | `<channel>__<stat>` for each channel, for stat in mean, std, min, max, last, slope, count | Float64 | yes |
//!
//! A feature is null when its channel has no value in the window (all seven
//! stats), or for `slope` when the window holds fewer than two distinct event
//! times of the channel.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, RecordBatch, TimestampMillisecondArray,
    UInt32Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::features::Stat;
use crate::window::{ChannelSet, ClosedWindow};

/// Name of the line column.
pub const COL_LINE: &str = "line";
/// Name of the machine column.
pub const COL_MACHINE: &str = "machine";
/// Name of the window start column.
pub const COL_WINDOW_START: &str = "window_start";
/// Name of the window end column.
pub const COL_WINDOW_END: &str = "window_end";
/// Name of the readings-per-window column.
pub const COL_N_READINGS: &str = "n_readings";
/// Separator between channel and stat in feature column names.
pub const FEATURE_SEPARATOR: &str = "__";
/// Number of leading columns before the features.
pub const N_KEY_COLUMNS: usize = 5;

/// Errors building or reading feature batches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A window carries features for a different number of channels than the
    /// schema (it came from a windower with another channel set).
    #[error("window has {got} channels, schema has {expected}")]
    ChannelCountMismatch {
        /// Channels in the schema.
        expected: usize,
        /// Channels in the window.
        got: usize,
    },
    /// A batch does not have the feature schema's column.
    #[error("batch has no Float64 (or Float32) column `{0}`")]
    MissingColumn(String),
    /// Arrow refused the batch.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// Row-major dense features, `n_rows x n_cols`, with NaN for nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseFeatures {
    /// Rows (windows).
    pub n_rows: usize,
    /// Columns (features, in [`FeatureSchema::feature_names`] order).
    pub n_cols: usize,
    /// `values[r * n_cols + c]`; NaN where the feature is null.
    pub values: Vec<f64>,
}

impl DenseFeatures {
    /// Features of row `r`.
    pub fn row(&self, r: usize) -> Option<&[f64]> {
        let a = r.checked_mul(self.n_cols)?;
        self.values.get(a..a + self.n_cols)
    }

    /// True where a feature is null (NaN).
    pub fn null_mask(&self) -> Vec<bool> {
        self.values.iter().map(|v| v.is_nan()).collect()
    }
}

/// The feature table layout for one ordered channel list.
#[derive(Debug, Clone)]
pub struct FeatureSchema {
    channels: Arc<ChannelSet>,
    feature_names: Vec<String>,
    schema: SchemaRef,
}

impl FeatureSchema {
    /// The schema for `channels` (the same set the windower uses).
    pub fn new(channels: Arc<ChannelSet>) -> Self {
        let feature_names: Vec<String> = channels
            .names()
            .flat_map(|c| {
                Stat::ALL
                    .iter()
                    .map(move |s| format!("{c}{FEATURE_SEPARATOR}{}", s.name()))
            })
            .collect();
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let mut fields = vec![
            Field::new(COL_LINE, DataType::Utf8, false),
            Field::new(COL_MACHINE, DataType::Utf8, false),
            Field::new(COL_WINDOW_START, ts.clone(), false),
            Field::new(COL_WINDOW_END, ts, false),
            Field::new(COL_N_READINGS, DataType::UInt32, false),
        ];
        fields.extend(
            feature_names
                .iter()
                .map(|n| Field::new(n, DataType::Float64, true)),
        );
        Self {
            channels,
            feature_names,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The channel set.
    pub fn channels(&self) -> &Arc<ChannelSet> {
        &self.channels
    }

    /// Feature column names, `<channel>__<stat>`, channel-major.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Number of feature columns (`7 x channels`).
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Column index in the feature vector of `(channel, stat)`.
    pub fn feature_index(&self, channel: usize, stat: Stat) -> Option<usize> {
        let s = Stat::ALL.iter().position(|x| *x == stat)?;
        (channel < self.channels.len()).then_some(channel * Stat::ALL.len() + s)
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn check(&self, windows: &[ClosedWindow]) -> Result<(), BatchError> {
        let expected = self.channels.len();
        match windows.iter().find(|w| w.features.len() != expected) {
            Some(w) => Err(BatchError::ChannelCountMismatch {
                expected,
                got: w.features.len(),
            }),
            None => Ok(()),
        }
    }

    /// One row per window, in the given order.
    pub fn build_batch(&self, windows: &[ClosedWindow]) -> Result<RecordBatch, BatchError> {
        self.check(windows)?;
        let n = windows.len();
        let bytes =
            |f: fn(&ClosedWindow) -> &str| windows.iter().map(|w| f(w).len()).sum::<usize>();
        let mut line = StringBuilder::with_capacity(n, bytes(|w| &w.key.line));
        let mut machine = StringBuilder::with_capacity(n, bytes(|w| &w.key.machine));
        for w in windows {
            line.append_value(&*w.key.line);
            machine.append_value(&*w.key.machine);
        }
        let start = TimestampMillisecondArray::from_iter_values(windows.iter().map(|w| w.start_ms))
            .with_timezone("UTC");
        let end = TimestampMillisecondArray::from_iter_values(windows.iter().map(|w| w.end_ms))
            .with_timezone("UTC");
        let n_readings = UInt32Array::from_iter_values(windows.iter().map(|w| w.n_readings));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(N_KEY_COLUMNS + self.n_features());
        columns.push(Arc::new(line.finish()));
        columns.push(Arc::new(machine.finish()));
        columns.push(Arc::new(start));
        columns.push(Arc::new(end));
        columns.push(Arc::new(n_readings));
        for c in 0..self.channels.len() {
            for stat in Stat::ALL {
                let mut b = Float64Builder::with_capacity(n);
                for w in windows {
                    let v = w
                        .features
                        .get(c)
                        .copied()
                        .flatten()
                        .and_then(|f| f.get(stat));
                    b.append_option(v);
                }
                columns.push(Arc::new(b.finish()));
            }
        }
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }

    /// Row-major features of `windows` (NaN for nulls), without Arrow.
    pub fn dense(&self, windows: &[ClosedWindow]) -> Result<DenseFeatures, BatchError> {
        self.check(windows)?;
        let n_cols = self.n_features();
        let mut values = Vec::with_capacity(windows.len() * n_cols);
        for w in windows {
            for f in &w.features {
                for stat in Stat::ALL {
                    let v = f.and_then(|f| f.get(stat));
                    values.push(v.unwrap_or(f64::NAN));
                }
            }
        }
        Ok(DenseFeatures {
            n_rows: windows.len(),
            n_cols,
            values,
        })
    }

    /// Row-major features of a batch that has this schema's feature columns
    /// (looked up by name, so extra or reordered columns are fine); NaN for
    /// nulls. This is how the models turn a batch into a matrix.
    pub fn dense_from_batch(&self, batch: &RecordBatch) -> Result<DenseFeatures, BatchError> {
        let n_rows = batch.num_rows();
        let n_cols = self.n_features();
        let mut values = vec![f64::NAN; n_rows * n_cols];
        for (c, name) in self.feature_names.iter().enumerate() {
            let col = batch
                .column_by_name(name)
                .ok_or_else(|| BatchError::MissingColumn(name.clone()))?;
            // Float64 since features are computed and stored in f64; Float32 is what
            // tables written before that hold, read exactly as they were stored.
            let any = col.as_any();
            if let Some(col) = any.downcast_ref::<Float64Array>() {
                for r in (0..n_rows).filter(|&r| col.is_valid(r)) {
                    values[r * n_cols + c] = col.value(r);
                }
            } else if let Some(col) = any.downcast_ref::<Float32Array>() {
                for r in (0..n_rows).filter(|&r| col.is_valid(r)) {
                    values[r * n_cols + c] = f64::from(col.value(r));
                }
            } else {
                return Err(BatchError::MissingColumn(name.clone()));
            }
        }
        Ok(DenseFeatures {
            n_rows,
            n_cols,
            values,
        })
    }
}

impl ClosedWindow {
    /// This window's features in [`FeatureSchema::feature_names`] order, NaN
    /// for nulls.
    pub fn feature_vector(&self) -> Vec<f64> {
        self.features
            .iter()
            .flat_map(|f| {
                Stat::ALL
                    .iter()
                    .map(move |s| f.and_then(|f| f.get(*s)).unwrap_or(f64::NAN))
            })
            .collect()
    }
}
