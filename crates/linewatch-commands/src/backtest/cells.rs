//! The cells of a CSV file's sensor columns: read as values, missing (empty), or rejected by
//! reason; and the rule that turns a column of rejected cells into an error.
//!
//! - an empty cell is a missing value: counted (`missing`), never an error;
//! - a cell that is not a number (`n/a`, `70,125` without `--decimal ,`, `running`) is
//!   rejected as `unparseable`;
//! - a number that is not finite (`inf`, `nan`, `1e400`, which overflows to inf) is rejected as
//!   `non_finite`;
//! - a finite number whose magnitude exceeds what a window feature can hold (Float32, so
//!   `|x| > f32::MAX` ≈ 3.4e38: `1e300`, an overflow sentinel some loggers write) is rejected
//!   as `out_of_range`, never turned into an infinite or finite-looking feature;
//! - a column with no value at all, or with more than [`MAX_UNPARSEABLE_SHARE`] of its
//!   non-empty cells unparseable, is an error naming the column and showing a rejected cell.

use std::path::Path;

use serde::Serialize;

/// Most share of a column's non-empty cells that may be unparseable; above it the file is an
/// error (a wrong decimal mark or a text column, not a few glitches).
pub const MAX_UNPARSEABLE_SHARE: f64 = 0.10;

/// Longest sample text shown, in characters.
const SAMPLE_CHARS: usize = 40;

/// How one cell was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Cell {
    /// A finite number.
    Value(f64),
    /// An empty cell.
    Missing,
    /// Text that is not a number with this decimal mark.
    Unparseable,
    /// `inf`, `nan`, or a number beyond the range of f64.
    NonFinite,
    /// A finite number beyond the range of a reading (`|x| > MAX_ABS_VALUE`, ≈ 3.4e38).
    OutOfRange,
}

/// Largest magnitude a reading may have: the stream's bound, so a cell and a message holding
/// the same number get the same verdict.
pub(super) use linewatch_window::MAX_ABS_VALUE;

/// Reads one (trimmed) cell. `decimal` is the decimal mark: `b'.'`, or `b','` where a `.` in
/// the cell makes it unparseable (it would be a thousands separator, not read).
pub(super) fn parse_cell(s: &str, decimal: u8) -> Cell {
    if s.is_empty() {
        return Cell::Missing;
    }
    let parsed = if decimal == b',' {
        if s.contains('.') {
            return Cell::Unparseable;
        }
        s.replacen(',', ".", 1).parse::<f64>()
    } else {
        s.parse::<f64>()
    };
    match parsed {
        Ok(v) if v.is_finite() && v.abs() <= MAX_ABS_VALUE => Cell::Value(v),
        Ok(v) if v.is_finite() => Cell::OutOfRange,
        Ok(_) => Cell::NonFinite,
        Err(_) => Cell::Unparseable,
    }
}

/// Rejected cells by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Cells that are not numbers.
    pub unparseable: u64,
    /// Numbers that are not finite (`inf`, `nan`, beyond the range of f64).
    pub non_finite: u64,
    /// Finite numbers beyond the range of the Float32 features (`|x| > f32::MAX`, e.g. `1e300`).
    pub out_of_range: u64,
}

impl Rejected {
    /// All rejected cells.
    pub fn total(&self) -> u64 {
        self.unparseable + self.non_finite + self.out_of_range
    }

    fn add(&mut self, o: &Rejected) {
        self.unparseable += o.unparseable;
        self.non_finite += o.non_finite;
        self.out_of_range += o.out_of_range;
    }
}

/// A rejected cell, shown as an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellSample {
    /// Line of the file (1 = the header).
    pub line: u64,
    /// The cell's text (cut to 40 characters).
    pub text: String,
}

/// One sensor column's cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnCells {
    /// The column.
    pub column: String,
    /// Cells read as values.
    pub values: u64,
    /// Empty cells (missing values).
    pub missing: u64,
    /// Rejected cells by reason.
    pub rejected: Rejected,
    /// The first rejected cell (the first unparseable one when there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<CellSample>,
}

/// A file's (or a run's) sensor cells: values, missing and rejected by reason, with the
/// columns that had a missing or rejected cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CellCounts {
    /// Cells read as values.
    pub values: u64,
    /// Empty cells (missing values).
    pub missing: u64,
    /// Rejected cells by reason.
    pub rejected: Rejected,
    /// JSON Lines in the long format: values of a channel already given at the same instant
    /// of the same machine, dropped as the stream drops them (omitted when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub repeated: u64,
    /// Each column with a missing or rejected cell (omitted when none, and in pooled counts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnCells>,
}

impl CellCounts {
    /// Totals over `parts` (without the per-column lists).
    pub fn pooled<'a>(parts: impl IntoIterator<Item = &'a CellCounts>) -> CellCounts {
        let mut out = CellCounts::default();
        for p in parts {
            out.values += p.values;
            out.missing += p.missing;
            out.rejected.add(&p.rejected);
            out.repeated += p.repeated;
        }
        out
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Counts the cells of each sensor column while a file is read.
pub(super) struct Tally {
    columns: Vec<ColumnCells>,
    first_unparseable: Vec<Option<CellSample>>,
    first_non_finite: Vec<Option<CellSample>>,
    first_out_of_range: Vec<Option<CellSample>>,
}

fn sample(line: u64, text: &str) -> CellSample {
    let mut t: String = text.chars().take(SAMPLE_CHARS).collect();
    if text.chars().nth(SAMPLE_CHARS).is_some() {
        t.push('…');
    }
    CellSample { line, text: t }
}

impl Tally {
    pub fn new(names: &[String]) -> Self {
        Self {
            columns: names
                .iter()
                .map(|n| ColumnCells {
                    column: n.clone(),
                    ..ColumnCells::default()
                })
                .collect(),
            first_unparseable: vec![None; names.len()],
            first_non_finite: vec![None; names.len()],
            first_out_of_range: vec![None; names.len()],
        }
    }

    /// Counts cell `text` of column `col` on file line `line`; returns its value if it has one.
    pub fn record(&mut self, col: usize, text: &str, line: u64, decimal: u8) -> Option<f64> {
        let c = &mut self.columns[col];
        match parse_cell(text, decimal) {
            Cell::Value(v) => {
                c.values += 1;
                return Some(v);
            }
            Cell::Missing => c.missing += 1,
            Cell::Unparseable => {
                c.rejected.unparseable += 1;
                self.first_unparseable[col].get_or_insert_with(|| sample(line, text));
            }
            Cell::NonFinite => {
                c.rejected.non_finite += 1;
                self.first_non_finite[col].get_or_insert_with(|| sample(line, text));
            }
            Cell::OutOfRange => {
                c.rejected.out_of_range += 1;
                self.first_out_of_range[col].get_or_insert_with(|| sample(line, text));
            }
        }
        None
    }

    /// The counts; an error naming every column with no value, or with more than
    /// [`MAX_UNPARSEABLE_SHARE`] of its non-empty cells unparseable, and a rejected cell of each.
    /// Rejected cells are logged (a warning per column).
    pub fn finish(self, path: &Path, decimal: u8) -> anyhow::Result<CellCounts> {
        let mut out = CellCounts::default();
        let mut errors = Vec::new();
        let mut looks_decimal_comma = false;
        let samples = self
            .first_unparseable
            .into_iter()
            .zip(self.first_non_finite)
            .zip(self.first_out_of_range);
        for (mut c, ((unparseable, non_finite), out_of_range)) in
            self.columns.into_iter().zip(samples)
        {
            c.sample = unparseable.or(non_finite).or(out_of_range);
            out.values += c.values;
            out.missing += c.missing;
            out.rejected.add(&c.rejected);
            let non_empty = c.values + c.rejected.total();
            let e_g = c
                .sample
                .as_ref()
                .map(|s| format!(", e.g. {:?} on line {}", s.text, s.line))
                .unwrap_or_default();
            if let Some(s) = &c.sample
                && decimal == b'.'
                && c.rejected.unparseable > 0
                && matches!(parse_cell(&s.text, b','), Cell::Value(_))
            {
                looks_decimal_comma = true;
            }
            let share = c.rejected.unparseable as f64 / non_empty.max(1) as f64;
            if c.values == 0 {
                errors.push(if non_empty == 0 {
                    format!("column {:?} has no value: every cell is empty", c.column)
                } else if c.rejected.unparseable > 0 {
                    format!(
                        "column {:?} has no number: {} of its {non_empty} non-empty cells are not \
                         numbers{e_g}",
                        c.column, c.rejected.unparseable
                    )
                } else {
                    format!(
                        "column {:?} has no finite value in range: all {non_empty} non-empty cells are \
                         inf, nan or beyond the range of a reading (|x| > {:e}){e_g}",
                        c.column, MAX_ABS_VALUE
                    )
                });
            } else if share > MAX_UNPARSEABLE_SHARE {
                errors.push(format!(
                    "column {:?}: {} of its {non_empty} non-empty cells ({:.1} %) are not \
                     numbers, more than the {:.0} % allowed{e_g}",
                    c.column,
                    c.rejected.unparseable,
                    share * 100.0,
                    MAX_UNPARSEABLE_SHARE * 100.0
                ));
            } else if c.rejected.total() > 0 {
                tracing::warn!(
                    file = %path.display(),
                    column = %c.column,
                    unparseable = c.rejected.unparseable,
                    non_finite = c.rejected.non_finite,
                    out_of_range = c.rejected.out_of_range,
                    sample = ?c.sample.as_ref().map(|s| &s.text),
                    line = ?c.sample.as_ref().map(|s| s.line),
                    "cells rejected; read as missing values"
                );
            }
            if c.missing > 0 || c.rejected.total() > 0 {
                out.columns.push(c);
            }
        }
        if !errors.is_empty() {
            let hint = if looks_decimal_comma {
                "the values look like decimal commas: read them with --decimal , and a --sep other than ','"
            } else {
                "a column that is not a sensor needs --ignore-col <name>; a decimal-comma file \
                 needs --decimal ,"
            };
            anyhow::bail!("{}: {} ({hint})", path.display(), errors.join("; "));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_values_missing_or_rejected_by_reason() {
        assert_eq!(parse_cell("70.125", b'.'), Cell::Value(70.125));
        assert_eq!(parse_cell("-1e3", b'.'), Cell::Value(-1000.0));
        assert_eq!(parse_cell("", b'.'), Cell::Missing);
        assert_eq!(parse_cell("70,125", b'.'), Cell::Unparseable);
        assert_eq!(parse_cell("n/a", b'.'), Cell::Unparseable);
        for s in ["inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-1e400"] {
            assert_eq!(parse_cell(s, b'.'), Cell::NonFinite, "{s}");
        }
        // Beyond the range of the Float32 features: rejected, never a feature.
        for s in ["1e300", "-1e300", "3.5e38", "1e39"] {
            assert_eq!(parse_cell(s, b'.'), Cell::OutOfRange, "{s}");
        }
        assert_eq!(parse_cell("1e6", b'.'), Cell::Value(1e6));
        assert_eq!(parse_cell("3.4e38", b'.'), Cell::Value(3.4e38));
        assert_eq!(parse_cell("1,5e300", b','), Cell::OutOfRange);
        assert_eq!(parse_cell("70,125", b','), Cell::Value(70.125));
        assert_eq!(parse_cell("-0,5", b','), Cell::Value(-0.5));
        assert_eq!(parse_cell("70", b','), Cell::Value(70.0));
        // A '.' is a thousands separator in a decimal-comma file: not read.
        assert_eq!(parse_cell("1.070,5", b','), Cell::Unparseable);
        assert_eq!(parse_cell("70.125", b','), Cell::Unparseable);
        assert_eq!(parse_cell("1,2,3", b','), Cell::Unparseable);
    }

    fn tally(cells: &[&str]) -> anyhow::Result<CellCounts> {
        let mut t = Tally::new(&["x".to_string()]);
        for (i, c) in cells.iter().enumerate() {
            t.record(0, c, i as u64 + 2, b'.');
        }
        t.finish(Path::new("f.csv"), b'.')
    }

    #[test]
    fn a_few_rejected_cells_are_counted_not_fatal() {
        // 1 unparseable of 10 non-empty = 10 %: allowed; empty and non-finite cells too.
        let mut cells = vec!["1.5"; 7];
        cells.extend(["oops", "inf", "1e400", ""]);
        let c = tally(&cells).unwrap();
        assert_eq!((c.values, c.missing), (7, 1));
        assert_eq!(
            c.rejected,
            Rejected {
                unparseable: 1,
                non_finite: 2,
                out_of_range: 0
            }
        );
        assert_eq!(c.columns.len(), 1);
        let s = c.columns[0].sample.clone().unwrap();
        assert_eq!((s.line, s.text.as_str()), (9, "oops"));
        let pooled = CellCounts::pooled([&c, &c]);
        assert_eq!(pooled.rejected.non_finite, 4);
        assert!(pooled.columns.is_empty());
    }

    #[test]
    fn values_beyond_the_feature_range_are_counted_as_out_of_range() {
        // Normal data with three overflow sentinels: counted under their own reason, sampled.
        let mut cells = vec!["70.1"; 20];
        cells[5] = "1e300";
        cells[9] = "1e300";
        cells[14] = "-1e300";
        cells.push("1e6");
        let c = tally(&cells).unwrap();
        assert_eq!(c.values, 18);
        assert_eq!(
            c.rejected,
            Rejected {
                unparseable: 0,
                non_finite: 0,
                out_of_range: 3
            }
        );
        assert_eq!(c.rejected.total(), 3);
        let s = c.columns[0].sample.clone().unwrap();
        assert_eq!((s.line, s.text.as_str()), (7, "1e300"));
        assert_eq!(CellCounts::pooled([&c, &c]).rejected.out_of_range, 6);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["rejected"]["out_of_range"], 3, "{json}");
        // A column of nothing but sentinels is an error naming it.
        let e = tally(&["1e300", "1e300"]).unwrap_err().to_string();
        assert!(e.contains("column \"x\"") && e.contains("|x| > 3.4"), "{e}");
    }

    #[test]
    fn more_than_the_share_unparseable_or_no_value_is_an_error() {
        let mut cells = vec!["1.5"; 8];
        cells.extend(["oops", "oops2"]);
        let e = tally(&cells).unwrap_err().to_string();
        assert!(e.contains("column \"x\""), "{e}");
        assert!(e.contains("\"oops\" on line 10"), "{e}");
        assert!(e.contains("20.0 %"), "{e}");
        let e = tally(&["", ""]).unwrap_err().to_string();
        assert!(e.contains("every cell is empty"), "{e}");
        let e = tally(&["nan", "inf"]).unwrap_err().to_string();
        assert!(e.contains("no finite value"), "{e}");
        let e = tally(&["1,5", "2,5"]).unwrap_err().to_string();
        assert!(e.contains("--decimal ,"), "{e}");
    }
}
