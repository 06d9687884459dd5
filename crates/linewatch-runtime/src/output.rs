//! The Parquet tables' rows: scores (window features + model outputs), alerts and labels.
//! The tables' names, columns and types are defined in `linewatch-tables`; the batches are
//! built here and only here.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use linewatch_window::{ClosedWindow, FeatureSchema};

use crate::alerter::Alert;
use crate::config::PipelineConfig;
use crate::scoring::RowScore;

/// Opens one of the pipeline's tables (`scores`, `alerts`, `labels`) under `sink.out`.
pub fn open_table(
    cfg: &PipelineConfig,
    table: &str,
    timestamp_column: &str,
) -> anyhow::Result<linewatch_sink::ParquetTable> {
    let mut tc = linewatch_sink::TableConfig::new(table, timestamp_column);
    tc.zstd_level = cfg.sink.zstd_level;
    tc.max_row_group_rows = cfg.sink.row_group_rows;
    let out = cfg
        .out_location()
        .map_err(|e| anyhow::anyhow!("sink.out: {e}"))?;
    linewatch_sink::ParquetTable::open(&out, tc)
        .map_err(|e| anyhow::anyhow!("opening the {table} table under {out}: {e}"))
}

/// The columns the scorer appends to the window's feature columns, in order (defined in
/// `linewatch-tables`).
pub fn score_fields() -> Vec<Field> {
    linewatch_tables::scores::score_fields()
}

/// Scored windows of one partition, buffered until their file is written.
pub struct ScoredRows {
    schema: FeatureSchema,
    windows: Vec<ClosedWindow>,
    scores: Vec<RowScore>,
    alert: Vec<bool>,
    min_seq: Option<u64>,
    bytes: usize,
}

impl ScoredRows {
    pub fn new(schema: &FeatureSchema) -> Self {
        Self {
            schema: schema.clone(),
            windows: Vec::new(),
            scores: Vec::new(),
            alert: Vec::new(),
            min_seq: None,
            bytes: 0,
        }
    }

    pub fn push(&mut self, w: ClosedWindow, score: RowScore, alert: bool) {
        self.min_seq = Some(self.min_seq.map_or(w.min_seq, |m| m.min(w.min_seq)));
        self.bytes +=
            96 + w.key.machine.len() + w.key.line.len() + self.schema.feature_names().len() * 8;
        self.windows.push(w);
        self.scores.push(score);
        self.alert.push(alert);
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Approximate size in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The oldest Kafka offset among the readings of the buffered windows.
    pub fn min_seq(&self) -> Option<u64> {
        self.min_seq
    }

    /// The scores table's batch: the window's feature columns, then the score columns.
    pub fn finish(&self) -> anyhow::Result<RecordBatch> {
        let features = self.schema.build_batch(&self.windows)?;
        let n = self.windows.len();
        let mut complete = BooleanBuilder::with_capacity(n);
        for w in &self.windows {
            complete.append_value(w.is_complete());
        }
        let mut anomaly = Float64Builder::with_capacity(n);
        let mut threshold = Float64Builder::with_capacity(n);
        let mut p_value = Float64Builder::with_capacity(n);
        let mut logd = Float64Builder::with_capacity(n);
        let mut defect = Float64Builder::with_capacity(n);
        let mut alert = BooleanBuilder::with_capacity(n);
        let mut version = StringBuilder::new();
        let mut top = StringBuilder::new();
        for (s, a) in self.scores.iter().zip(&self.alert) {
            anomaly.append_option(s.anomaly_score);
            threshold.append_option(s.threshold);
            p_value.append_option(s.p_value);
            logd.append_option(s.log_density_rel);
            defect.append_option(s.defect_prob);
            alert.append_value(*a);
            version.append_option(s.model_version.as_deref());
            if s.top_features.is_empty() {
                top.append_null();
            } else {
                top.append_value(serde_json::to_string(&s.top_features)?);
            }
        }
        let mut fields: Vec<Arc<Field>> = features.schema().fields().iter().cloned().collect();
        fields.extend(score_fields().into_iter().map(Arc::new));
        let mut columns: Vec<ArrayRef> = features.columns().to_vec();
        columns.push(Arc::new(complete.finish()));
        columns.push(Arc::new(anomaly.finish()));
        columns.push(Arc::new(threshold.finish()));
        columns.push(Arc::new(p_value.finish()));
        columns.push(Arc::new(logd.finish()));
        columns.push(Arc::new(defect.finish()));
        columns.push(Arc::new(alert.finish()));
        columns.push(Arc::new(version.finish()));
        columns.push(Arc::new(top.finish()));
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// The alerts table's schema (defined in `linewatch-tables`).
pub fn alerts_schema() -> Schema {
    linewatch_tables::alerts::schema()
}

/// Alerts as a batch of the alerts table.
pub fn alerts_batch<'a>(alerts: impl Iterator<Item = &'a Alert>) -> anyhow::Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut line = StringBuilder::new();
    let mut machine = StringBuilder::new();
    let mut start = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut end = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut state = StringBuilder::new();
    let mut score = Float64Builder::new();
    let mut threshold = Float64Builder::new();
    let mut p_value = Float64Builder::new();
    let mut defect = Float64Builder::new();
    let mut top = StringBuilder::new();
    let mut version = StringBuilder::new();
    for a in alerts {
        id.append_value(&a.alert_id);
        line.append_value(&a.line);
        machine.append_value(&a.machine);
        start.append_value(a.window_start_ms);
        end.append_value(a.window_end_ms);
        state.append_value(a.state.as_str());
        score.append_value(a.anomaly_score);
        threshold.append_value(a.threshold);
        p_value.append_option(a.p_value);
        defect.append_option(a.defect_prob);
        top.append_value(serde_json::to_string(&a.top_features)?);
        version.append_value(&a.model_version);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(line.finish()),
        Arc::new(machine.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(state.finish()),
        Arc::new(score.finish()),
        Arc::new(threshold.finish()),
        Arc::new(p_value.finish()),
        Arc::new(defect.finish()),
        Arc::new(top.finish()),
        Arc::new(version.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::new(alerts_schema()), columns)?)
}

/// The labels table's schema (defined in `linewatch-tables`).
pub fn labels_schema() -> Schema {
    linewatch_tables::labels::schema()
}

/// Inspections as a batch of the labels table.
pub fn labels_batch(rows: &[linewatch_window::Inspection]) -> anyhow::Result<RecordBatch> {
    let mut line = StringBuilder::new();
    let mut machine = StringBuilder::new();
    let mut ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut defect = BooleanBuilder::new();
    for r in rows {
        line.append_value(&r.line);
        machine.append_value(&r.machine);
        ts.append_value(r.ts_ms);
        defect.append_value(r.defect);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(line.finish()),
        Arc::new(machine.finish()),
        Arc::new(ts.finish()),
        Arc::new(defect.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::new(labels_schema()), columns)?)
}

/// Alerts read back from alerts-table batches (to re-send after a crash).
pub fn alerts_from_batches(batches: &[RecordBatch]) -> anyhow::Result<Vec<Alert>> {
    use crate::alerter::{AlertState, format_ts};
    use arrow_array::{Array, Float64Array, StringArray, TimestampMillisecondArray};
    let mut out = Vec::new();
    for b in batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .ok_or_else(|| anyhow::anyhow!("alerts file without column {n}"))
        };
        let s = |n: &str| -> anyhow::Result<StringArray> {
            col(n)?
                .as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("column {n} is not Utf8"))
        };
        let f = |n: &str| -> anyhow::Result<Float64Array> {
            col(n)?
                .as_any()
                .downcast_ref::<Float64Array>()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("column {n} is not Float64"))
        };
        let t = |n: &str| -> anyhow::Result<TimestampMillisecondArray> {
            col(n)?
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("column {n} is not a timestamp"))
        };
        let (id, line, machine, state, top, version) = (
            s("alert_id")?,
            s("line")?,
            s("machine")?,
            s("state")?,
            s("top_features")?,
            s("model_version")?,
        );
        let (score, threshold, defect) = (f("anomaly_score")?, f("threshold")?, f("defect_prob")?);
        // Files written before p-values existed have no such column: their alerts read back
        // with none.
        let p_value = match b.column_by_name("p_value") {
            Some(_) => Some(f("p_value")?),
            None => None,
        };
        let (start, end) = (t("window_start")?, t("window_end")?);
        for i in 0..b.num_rows() {
            out.push(Alert {
                alert_id: id.value(i).to_string(),
                line: line.value(i).to_string(),
                machine: machine.value(i).to_string(),
                window_start: format_ts(start.value(i)),
                window_end: format_ts(end.value(i)),
                state: if state.value(i) == "open" {
                    AlertState::Open
                } else {
                    AlertState::Resolved
                },
                anomaly_score: score.value(i),
                threshold: threshold.value(i),
                p_value: p_value
                    .as_ref()
                    .and_then(|p| (!p.is_null(i)).then(|| p.value(i))),
                defect_prob: (!defect.is_null(i)).then(|| defect.value(i)),
                top_features: serde_json::from_str(top.value(i))?,
                model_version: version.value(i).to_string(),
                window_start_ms: start.value(i),
                window_end_ms: end.value(i),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerter::{AlertState, FeatureContribution};

    #[test]
    fn alerts_survive_a_round_trip_through_their_batch() {
        let alert = Alert {
            alert_id: "id-1".into(),
            line: "press-3".into(),
            machine: "m-1".into(),
            window_start: crate::alerter::format_ts(1_000),
            window_end: crate::alerter::format_ts(11_000),
            state: AlertState::Open,
            anomaly_score: 12.5,
            threshold: 3.0,
            p_value: Some(0.004),
            defect_prob: Some(0.25),
            top_features: vec![FeatureContribution {
                name: "temp_c__mean".into(),
                contribution: -7.0,
            }],
            model_version: "v000001".into(),
            window_start_ms: 1_000,
            window_end_ms: 11_000,
        };
        let resolved = Alert {
            state: AlertState::Resolved,
            p_value: None,
            defect_prob: None,
            ..alert.clone()
        };
        let batch = alerts_batch([&alert, &resolved].into_iter()).unwrap();
        assert_eq!(batch.schema().as_ref(), &alerts_schema());
        let back = alerts_from_batches(std::slice::from_ref(&batch)).unwrap();
        assert_eq!(back, vec![alert.clone(), resolved.clone()]);
        // An alerts file from before p-values (no such column) still reads back, without one.
        let keep: Vec<usize> = (0..batch.num_columns())
            .filter(|&i| batch.schema().field(i).name() != "p_value")
            .collect();
        let old = batch.project(&keep).unwrap();
        let back = alerts_from_batches(&[old]).unwrap();
        assert_eq!(back[0].p_value, None);
        assert_eq!(back[0].alert_id, alert.alert_id);
        assert_eq!(back[1].state, resolved.state);
    }

    #[test]
    fn labels_batch_has_the_labels_schema() {
        let rows = vec![linewatch_window::Inspection {
            line: "l".into(),
            machine: "m".into(),
            ts_ms: 5,
            defect: true,
        }];
        let b = labels_batch(&rows).unwrap();
        assert_eq!(b.schema().as_ref(), &labels_schema());
        assert_eq!(b.num_rows(), 1);
    }
}
