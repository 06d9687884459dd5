//! Reading JSON Lines files (`.jsonl`, `.ndjson`): one readings message per line, in the
//! pipeline's `decode.format` (`json` or `json_long`) and field mapping, decoded by the
//! stream's own decoder, so a dump of a readings topic (`kcat -C -t readings -e > dump.jsonl`)
//! backtests as the stream would read it. Each `(line, machine)` becomes one series, scored
//! like one CSV file. The label of a reading is the message's top-level `--label-col` key
//! (true/false, 1/0, "anomaly"/"normal"; absent = normal; given twice, an error).
//!
//! A line the stream would dead-letter is an error naming its line number and reason: a
//! backtest over a file with refused messages would score something other than the file. In
//! the long format a channel repeated at one instant is dropped, as the stream does, and
//! counted in the series' `cells.repeated`.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use linewatch_runtime::config::PipelineConfig;
use linewatch_window::{Decoded, Format, MappedDecoder};

use super::cells::{CellCounts, ColumnCells};
use super::input::{CsvFile, Row, parse_label};

/// Whether `path` is read as JSON Lines (by its extension).
pub(super) fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}

/// One instant of one machine while the file is read.
#[derive(Default)]
struct Instant {
    values: Vec<(String, f64)>,
    label: bool,
}

/// Reads `path`: one [`CsvFile`] per `(line, machine)`, named `<path>#<line>:<machine>`
/// (`/` in either written `%2F`), in the order of the names.
pub(super) fn read_jsonl(
    path: &Path,
    cfg: &PipelineConfig,
    label_key: &str,
) -> anyhow::Result<Vec<(PathBuf, CsvFile)>> {
    let d = &cfg.decode;
    if !matches!(d.format, Format::Json | Format::JsonLong) {
        bail!(
            "{}: JSON Lines are read in decode.format \"json\" or \"json_long\", not {:?}",
            path.display(),
            d.format
        );
    }
    if d.fields.machine_from_key {
        bail!(
            "{}: decode.fields.machine_from_key needs Kafka keys, which JSON Lines do not have",
            path.display()
        );
    }
    let decoder = MappedDecoder::new(d.format, d.fields.clone(), d.limits());
    let file = super::input::open_input(path)?;
    // (line, machine) -> time -> readings at that time (wide: each message its own reading;
    // long: one gathered reading per instant).
    let mut series: BTreeMap<(String, String), BTreeMap<i64, Vec<Instant>>> = BTreeMap::new();
    // (line, machine) -> long-format values repeated at one of its instants.
    let mut repeated: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let text = text.with_context(|| format!("{}: line {n}", path.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let refused = |reason: &str, why: String| {
            anyhow::anyhow!(
                "{}: line {n} would be dead-lettered ({reason}): {why}",
                path.display()
            )
        };
        let decoded = decoder
            .decode(text.as_bytes(), None)
            .map_err(|e| refused(e.reason(), e.to_string()))?;
        let label = label_of(&text, label_key).map_err(|why| {
            anyhow::anyhow!(
                "{}: line {n}: {why}; a label is 1/0, true/false, yes/no or anomaly/normal \
                 (absent or null = normal)",
                path.display()
            )
        })?;
        match decoded {
            Decoded::Reading(r) => {
                series
                    .entry((r.line, r.machine))
                    .or_default()
                    .entry(r.ts_ms)
                    .or_default()
                    .push(Instant {
                        values: r.values,
                        label,
                    });
            }
            Decoded::Value(v) => {
                let key = (v.line, v.machine);
                let at = series
                    .entry(key.clone())
                    .or_default()
                    .entry(v.ts_ms)
                    .or_default();
                if at.is_empty() {
                    at.push(Instant::default());
                }
                let inst = &mut at[0];
                if inst.values.iter().any(|(c, _)| *c == v.channel) {
                    *repeated.entry(key).or_default() += 1;
                } else {
                    inst.values.push((v.channel, v.value));
                }
                inst.label |= label;
            }
            Decoded::Sparkplug(_) => bail!("{}: not a JSON format", path.display()),
        }
    }
    let repeated_values: u64 = repeated.values().sum();
    if repeated_values > 0 {
        tracing::warn!(file = %path.display(), values = repeated_values, "a channel repeated at one instant of one machine: dropped, as the stream does (counted in cells.repeated)");
    }
    if series.is_empty() {
        bail!("{}: no readings", path.display());
    }
    let escape = |s: &str| s.replace('%', "%25").replace('/', "%2F");
    Ok(series
        .into_iter()
        .map(|((line, machine), times)| {
            let name = PathBuf::from(format!(
                "{}#{}:{}",
                path.display(),
                escape(&line),
                escape(&machine)
            ));
            let repeated = repeated.get(&(line, machine)).copied().unwrap_or(0);
            (name, to_series(times, repeated))
        })
        .collect())
}

/// `label_key` of the message: true/false, 1/0 or a label word; absent or null = normal. A
/// key given twice is an error: the stream's decoder ignores the fields it does not read, so
/// nothing else would refuse it, and taking either value would be a silent guess.
fn label_of(text: &str, label_key: &str) -> Result<bool, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = serde::de::DeserializeSeed::deserialize(LabelSeed(label_key), &mut de)
        .map_err(|e| e.to_string())?;
    match found {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(serde_json::Value::Number(x)) => {
            parse_label(&x.to_string(), b'.').ok_or_else(|| format!("`{label_key}` is {x}"))
        }
        Some(serde_json::Value::String(s)) => {
            parse_label(&s, b'.').ok_or_else(|| format!("`{label_key}` is {s:?}"))
        }
        Some(other) => Err(format!("`{label_key}` is {other}")),
    }
}

/// The value of one top-level key of a JSON object, the other values skipped; an error when
/// the key appears twice.
struct LabelSeed<'k>(&'k str);

impl<'de> serde::de::DeserializeSeed<'de> for LabelSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LabelSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != self.0 {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if found.is_some() {
                return Err(serde::de::Error::custom(format!(
                    "`{}` appears twice",
                    self.0
                )));
            } else {
                found = Some(map.next_value::<serde_json::Value>()?);
            }
        }
        Ok(found)
    }
}

/// A machine's readings as a series: channels sorted by name, rows in time order, a channel
/// absent from a reading counted as a missing cell.
fn to_series(times: BTreeMap<i64, Vec<Instant>>, repeated: u64) -> CsvFile {
    let mut columns: BTreeMap<String, ColumnCells> = BTreeMap::new();
    for inst in times.values().flatten() {
        for (c, _) in &inst.values {
            columns.entry(c.clone()).or_insert_with(|| ColumnCells {
                column: c.clone(),
                ..ColumnCells::default()
            });
        }
    }
    let mut rows = Vec::new();
    for (ts_ms, instants) in times {
        for inst in instants {
            let present: HashMap<&str, ()> =
                inst.values.iter().map(|(c, _)| (c.as_str(), ())).collect();
            for (c, cells) in &mut columns {
                if present.contains_key(c.as_str()) {
                    cells.values += 1;
                } else {
                    cells.missing += 1;
                }
            }
            rows.push(Row {
                ts_ms,
                ts_text: linewatch_sim::rfc3339_ms(ts_ms).unwrap_or_else(|| ts_ms.to_string()),
                values: inst.values,
                label: inst.label,
            });
        }
    }
    let channels: Vec<String> = columns.keys().cloned().collect();
    let cells = CellCounts {
        values: columns.values().map(|c| c.values).sum(),
        missing: columns.values().map(|c| c.missing).sum(),
        columns: columns.into_values().filter(|c| c.missing > 0).collect(),
        repeated,
        ..CellCounts::default()
    };
    CsvFile {
        channels,
        rows,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::label_of;

    #[test]
    fn labels_are_read_and_a_repeated_label_is_refused() {
        let read = |t: &str| label_of(t, "label");
        assert_eq!(read(r#"{"label":1,"x":{"label":0}}"#), Ok(true));
        assert_eq!(read(r#"{"label":"normal"}"#), Ok(false));
        assert_eq!(read(r#"{"label":null,"other":1,"other":2}"#), Ok(false));
        assert_eq!(read(r#"{"x":true}"#), Ok(false));
        assert!(read(r#"{"label":"maybe"}"#).is_err());
        let twice = read(r#"{"label":0,"v":1,"label":1}"#).unwrap_err();
        assert!(twice.contains("`label` appears twice"), "{twice}");
    }
}
