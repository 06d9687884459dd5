//! Reading labelled CSV files: time, label and sensor columns, one row per line, time order.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, bail};

use super::cells::{CellCounts, Tally};

/// How the columns of a CSV file are read (from [`super::BacktestOptions`]).
pub(super) struct CsvLayout<'a> {
    pub sep: u8,
    /// Decimal mark of the sensor values: `b'.'` or `b','`.
    pub decimal: u8,
    pub time_col: &'a str,
    pub label_col: &'a str,
    pub ignore_cols: &'a [String],
}

/// One CSV row after parsing.
pub(super) struct Row {
    pub ts_ms: i64,
    pub ts_text: String,
    pub values: Vec<(String, f64)>,
    pub label: bool,
}

/// One parsed file: its sensor columns (in file order), its rows (in time order) and the
/// counts of its sensor cells (values, missing, rejected by reason).
pub(super) struct CsvFile {
    pub channels: Vec<String>,
    pub rows: Vec<Row>,
    pub cells: CellCounts,
}

/// Parses a timestamp: RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), or epoch seconds / ms
/// (numbers below 1e11 are read as seconds).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = linewatch_window::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    Some(if v.abs() < 1e11 {
        (v * 1000.0).round() as i64
    } else {
        v.round() as i64
    })
}

/// Opens an input file: a local path, or an object-store URL (`s3://bucket/key.csv`, read
/// whole into memory).
pub(super) fn open_input(path: &Path) -> anyhow::Result<Box<dyn std::io::Read>> {
    let location = linewatch_sink::Location::from_path_or_url(path)?;
    Ok(match location.as_local() {
        Some(local) => Box::new(
            std::fs::File::open(local).with_context(|| format!("opening {}", local.display()))?,
        ),
        None => Box::new(std::io::Cursor::new(
            location
                .get()
                .with_context(|| format!("reading {location}"))?,
        )),
    })
}

pub(super) fn parse_label(s: &str, decimal: u8) -> Option<bool> {
    let mut s = s.trim().to_ascii_lowercase();
    if decimal == b',' {
        s = s.replace(',', ".");
    }
    match s.as_str() {
        "1" | "1.0" | "true" | "yes" | "anomaly" => Some(true),
        "0" | "0.0" | "false" | "no" | "normal" | "" => Some(false),
        _ => None,
    }
}

/// Reads one file; rows are sorted by time (stable, so equal times keep file order). Sensor
/// cells are counted as values, missing or rejected (see [`super::cells`]); a column with no
/// value, or with too many cells that are not numbers, is an error naming it.
pub(super) fn read_csv(path: &Path, o: &CsvLayout<'_>) -> anyhow::Result<CsvFile> {
    if !matches!(o.decimal, b'.' | b',') {
        bail!("the decimal mark must be '.' or ','");
    }
    if o.decimal == o.sep {
        bail!(
            "the decimal mark {:?} is also the field separator: give another --sep (e.g. ';')",
            o.decimal as char
        );
    }
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(o.sep)
        .trim(csv::Trim::All)
        .from_reader(open_input(path)?);
    let headers = rdr
        .headers()
        .with_context(|| format!("{}: reading the header", path.display()))?
        .clone();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let names: Vec<&str> = headers.iter().collect();
    // One header cell holding `;` or a tab is a file read with the wrong separator.
    let hint = if names.len() == 1 && names[0].contains([';', '\t', '|']) {
        " (one column only: is the separator `--sep`?)"
    } else {
        ""
    };
    let Some(t_idx) = find(o.time_col) else {
        bail!(
            "{}: no time column {:?} (columns: {:?}){hint}",
            path.display(),
            o.time_col,
            names
        );
    };
    let Some(l_idx) = find(o.label_col) else {
        bail!(
            "{}: no label column {:?} (columns: {:?}){hint}",
            path.display(),
            o.label_col,
            names
        );
    };
    let channel_idx: Vec<usize> = (0..headers.len())
        .filter(|&i| i != t_idx && i != l_idx && !o.ignore_cols.iter().any(|c| c == &headers[i]))
        .collect();
    if channel_idx.is_empty() {
        bail!("{}: no sensor columns left", path.display());
    }
    let channels: Vec<String> = channel_idx
        .iter()
        .map(|&i| headers[i].to_string())
        .collect();
    let mut rows = Vec::new();
    let mut tally = Tally::new(&channels);
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{} row {}", path.display(), n + 2))?;
        let line = rec.position().map_or(n as u64 + 2, |p| p.line());
        let ts_text = rec.get(t_idx).unwrap_or_default().to_string();
        let ts_ms = parse_time(&ts_text)
            .with_context(|| format!("{} row {}: bad time {ts_text:?}", path.display(), n + 2))?;
        let label_text = rec.get(l_idx).unwrap_or_default();
        let label = parse_label(label_text, o.decimal).with_context(|| {
            format!(
                "{} row {}: bad label {label_text:?} (use 1/0, true/false, yes/no or \
                 anomaly/normal)",
                path.display(),
                n + 2
            )
        })?;
        let values = channel_idx
            .iter()
            .zip(&channels)
            .enumerate()
            .filter_map(|(col, (&i, name))| {
                let text = rec.get(i).unwrap_or_default();
                let v = tally.record(col, text, line, o.decimal)?;
                Some((name.clone(), v))
            })
            .collect();
        rows.push(Row {
            ts_ms,
            ts_text,
            values,
            label,
        });
    }
    let cells = tally.finish(path, o.decimal)?;
    rows.sort_by_key(|r| r.ts_ms);
    Ok(CsvFile {
        channels,
        rows,
        cells,
    })
}

/// Checks that `file` has exactly the channel columns `expected` (in any order); the error
/// names the missing and the extra columns.
pub(super) fn check_channels(
    path: &Path,
    channels: &[String],
    expected: &[String],
    expected_from: &Path,
) -> anyhow::Result<()> {
    let have: BTreeSet<&str> = channels.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    if have == want {
        return Ok(());
    }
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    let extra: Vec<&str> = have.difference(&want).copied().collect();
    bail!(
        "{}: its channel columns differ from those of {} (the model's inputs): missing {:?}, \
         extra {:?} (use --ignore-col for columns that are not sensors)",
        path.display(),
        expected_from.display(),
        missing,
        extra
    )
}

/// The median positive step between consecutive times.
pub(super) fn median_interval(rows: &[Row]) -> Option<i64> {
    let mut d: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].ts_ms - w[0].ts_ms)
        .filter(|&d| d > 0)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some(d[d.len() / 2])
}

/// A value for one CSV field, quoted when needed.
pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_documented_form() {
        assert_eq!(parse_time("2013-12-02 21:15:00"), Some(1_386_018_900_000));
        assert_eq!(parse_time("2013-12-02T21:15:00Z"), Some(1_386_018_900_000));
        assert_eq!(parse_time("1386018900"), Some(1_386_018_900_000));
        assert_eq!(parse_time("1386018900000"), Some(1_386_018_900_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn channel_mismatch_names_missing_and_extra() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ok = check_channels(
            Path::new("b.csv"),
            &s(&["y", "x"]),
            &s(&["x", "y"]),
            Path::new("a.csv"),
        );
        assert!(ok.is_ok());
        let err = check_channels(
            Path::new("b.csv"),
            &s(&["x", "z"]),
            &s(&["x", "y"]),
            Path::new("a.csv"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("missing [\"y\"]"), "{err}");
        assert!(err.contains("extra [\"z\"]"), "{err}");
    }
}
