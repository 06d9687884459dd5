//! # linewatch-report
//!
//! Renders one machine's anomaly history from the scores Parquet table (`OUT/scores/`,
//! hive-partitioned `date=YYYY-MM-DD/line=<line>/part-*.parquet`, see `docs/architecture.md`,
//! "Contracts") as a PNG or SVG picture, for `linewatch report`.
//!
//! ## The picture
//!
//! - Title: machine, line(s) and the UTC time range shown; a subtitle with the number of
//!   windows, alerted windows and the model versions seen.
//! - Top panel: the anomaly score per window (line), the threshold as a dashed step line
//!   (it changes with the model version), red background spans and red points where the
//!   machine had an open alert, grey spans where no score exists yet (warm-up), and dashed
//!   vertical markers labelled with the new version where `model_version` changes. When a
//!   few values dwarf the rest (largest magnitude >= 100x the median) the y axis becomes
//!   logarithmic, or symmetric-logarithmic (linear near zero) when scores can be negative.
//! - Middle panel (only when some `defect_prob` is not null): the defect probability.
//! - Bottom panel (when `top_features` name any feature): the contributions of the top-K
//!   features over time, one coloured line each with a legend. Features are ranked by the
//!   sum of |contribution| over the alerted windows (over all windows when none alerted).
//!   A window's `top_features` lists only its strongest features, so a line shows gaps
//!   where the feature was not among them.
//! - Time axis labels are round UTC times (`HH:MM`, the date at midnight, dates for spans
//!   of weeks); lines break at gaps in the data.
//!
//! ## Reading
//!
//! A window belongs to the range when its `window_start` lies in `[from, to)`. Only files
//! in `date=` partitions that can hold such windows are opened (rows are partitioned by the
//! UTC date of `window_start`). Files are read with `linewatch-sink`.
//!
//! Text is drawn with plotters' `ab_glyph` backend and an embedded DejaVu Sans
//! (`assets/DejaVuSans.ttf`, Bitstream Vera licence in `assets/DejaVu-LICENSE`), so no
//! system fonts are needed.
//!
//! ```no_run
//! use linewatch_report::{ReportOptions, render};
//! let opts = ReportOptions::new("linewatch-out/scores", "m-17", "m-17.png");
//! let summary = render(&opts)?;
//! assert!(summary.rows > 0);
//! # Ok::<(), linewatch_report::ReportError>(())
//! ```

mod draw;
mod error;
mod font;
mod load;

pub use load::Unusable;
mod scale;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use error::ReportError;

/// Default picture width in pixels.
pub const DEFAULT_WIDTH: u32 = 1400;
/// Default picture height in pixels.
pub const DEFAULT_HEIGHT: u32 = 900;
/// Default number of features in the contribution panel.
pub const DEFAULT_TOP_K: usize = 5;
/// Smallest accepted width or height.
pub const MIN_SIZE: u32 = 200;
/// Largest accepted width or height.
pub const MAX_SIZE: u32 = 16_384;

/// What to draw and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// The scores table directory (`OUT/scores`).
    pub scores_root: PathBuf,
    /// The machine to show.
    pub machine: String,
    /// Windows starting at or after this time (inclusive); `None`: from the first.
    pub from: Option<DateTime<Utc>>,
    /// Windows starting before this time (exclusive); `None`: to the last.
    pub to: Option<DateTime<Utc>>,
    /// Output file; `.png` or `.svg` (case-insensitive) picks the format.
    pub out: PathBuf,
    /// Width in pixels, `MIN_SIZE..=MAX_SIZE`.
    pub width: u32,
    /// Height in pixels, `MIN_SIZE..=MAX_SIZE`.
    pub height: u32,
    /// Number of features in the contribution panel (0: no panel).
    pub top_k: usize,
}

impl ReportOptions {
    /// Options with the whole time range, the default size and top-K.
    pub fn new(
        scores_root: impl Into<PathBuf>,
        machine: impl Into<String>,
        out: impl Into<PathBuf>,
    ) -> Self {
        ReportOptions {
            scores_root: scores_root.into(),
            machine: machine.into(),
            from: None,
            to: None,
            out: out.into(),
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            top_k: DEFAULT_TOP_K,
        }
    }
}

/// The picture's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A PNG bitmap.
    Png,
    /// An SVG document (text stays text).
    Svg,
}

impl OutputFormat {
    /// The format named by the file's extension (`.png` / `.svg`, any case).
    pub fn from_path(path: &Path) -> Result<OutputFormat, ReportError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(OutputFormat::Png),
            Some("svg") => Ok(OutputFormat::Svg),
            _ => Err(ReportError::UnsupportedFormat(path.to_path_buf())),
        }
    }
}

/// What was drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSummary {
    /// Windows of the machine in the range.
    pub rows: usize,
    /// Of those, windows after which the machine had an open alert.
    pub alerted_windows: usize,
    /// Start of the first window.
    pub first: DateTime<Utc>,
    /// End of the last window.
    pub last: DateTime<Utc>,
    /// The features in the contribution panel, strongest first.
    pub top_features: Vec<String>,
    /// The machine's line(s), in order of first appearance.
    pub lines: Vec<String>,
    /// Model versions seen, in order of first appearance.
    pub model_versions: Vec<String>,
    /// Values of those rows that could not be used as they are, by reason.
    pub unusable: Unusable,
    /// The file written.
    pub out: PathBuf,
    /// Its format.
    pub format: OutputFormat,
}

/// Reads the machine's windows from the scores table and draws them into `opts.out`.
///
/// The file is written under a temporary name next to `opts.out` and renamed over it,
/// so a failed render leaves no partial picture.
///
/// # Errors
///
/// An unsupported extension, bad options (size out of range, `from >= to`), a missing
/// scores directory, unreadable Parquet files or columns of the wrong type, no rows for
/// the machine in the range ([`ReportError::NoRows`]), or a drawing / write failure.
pub fn render(opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let format = OutputFormat::from_path(&opts.out)?;
    for (what, v) in [("width", opts.width), ("height", opts.height)] {
        if !(MIN_SIZE..=MAX_SIZE).contains(&v) {
            return Err(ReportError::InvalidOptions(format!(
                "{what} {v} is outside {MIN_SIZE}..={MAX_SIZE} pixels"
            )));
        }
    }
    if let (Some(f), Some(t)) = (opts.from, opts.to)
        && f >= t
    {
        return Err(ReportError::InvalidOptions(format!(
            "from ({f}) must be before to ({t})"
        )));
    }
    let root = linewatch_sink::Location::from_path_or_url(&opts.scores_root)?;
    if root.as_local().is_some_and(|dir| !dir.is_dir()) {
        return Err(ReportError::ScoresRootMissing(opts.scores_root.clone()));
    }
    let files = linewatch_sink::list_files(&root)?;
    // An object store has no folders: a table without files is not there.
    if files.is_empty() && root.as_local().is_none() {
        return Err(ReportError::ScoresRootMissing(opts.scores_root.clone()));
    }

    let from_ms = opts.from.map(load::to_ms);
    let to_ms = opts.to.map(load::to_ms);
    let (rows, unusable) = load::load_rows(files, &opts.machine, from_ms, to_ms)?;
    let (Some(first_row), Some(last_end)) = (rows.first(), rows.iter().map(|r| r.end_ms).max())
    else {
        return Err(ReportError::NoRows {
            machine: opts.machine.clone(),
            root: opts.scores_root.clone(),
            range: range_words(opts),
        });
    };
    let first_ms = first_row.start_ms;

    let alerted_windows = rows.iter().filter(|r| r.alert).count();
    let top_features = rank_features(&rows, opts.top_k);
    let lines = distinct(rows.iter().map(|r| r.line.as_str()));
    let model_versions = distinct(rows.iter().filter_map(|r| r.model_version.as_deref()));

    let line = lines.join(", ");
    let picture = draw::Picture {
        machine: &opts.machine,
        line: &line,
        rows: &rows,
        features: &top_features,
        alerted: alerted_windows,
        versions: &model_versions,
    };
    draw::render_file(format, &opts.out, (opts.width, opts.height), &picture)?;

    let time = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok(ReportSummary {
        rows: rows.len(),
        alerted_windows,
        first: time(first_ms),
        last: time(last_end),
        top_features,
        lines,
        model_versions,
        unusable,
        out: opts.out.clone(),
        format,
    })
}

fn range_words(opts: &ReportOptions) -> String {
    match (opts.from, opts.to) {
        (None, None) => "(whole table)".to_owned(),
        (Some(f), None) => format!("from {}", f.to_rfc3339()),
        (None, Some(t)) => format!("before {}", t.to_rfc3339()),
        (Some(f), Some(t)) => format!("between {} and {}", f.to_rfc3339(), t.to_rfc3339()),
    }
}

/// Distinct values in order of first appearance.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    out
}

/// The `k` features with the largest total |contribution| over the alerted windows (over
/// all windows when no alerted window names any feature); ties by name.
fn rank_features(rows: &[load::Row], k: usize) -> Vec<String> {
    let totals = |alerted_only: bool| {
        let mut t: HashMap<&str, f64> = HashMap::new();
        for r in rows.iter().filter(|r| r.alert || !alerted_only) {
            for (name, c) in &r.top {
                *t.entry(name.as_str()).or_default() += c.abs();
            }
        }
        t
    };
    let mut t = totals(true);
    if t.is_empty() {
        t = totals(false);
    }
    let mut ranked: Vec<(&str, f64)> = t.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(k)
        .map(|(n, _)| n.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(alert: bool, top: &[(&str, f64)]) -> load::Row {
        load::Row {
            start_ms: 0,
            end_ms: 1,
            line: "l".into(),
            score: Some(1.0),
            threshold: None,
            alert,
            model_version: None,
            defect_prob: None,
            top: top.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
        }
    }

    #[test]
    fn ranking_prefers_alerted_windows() {
        let rows = vec![
            row(false, &[("a", -100.0), ("b", -1.0)]),
            row(true, &[("b", -3.0), ("c", 2.0)]),
            row(true, &[("c", -1.5), ("d", -0.5)]),
        ];
        assert_eq!(rank_features(&rows, 2), ["c", "b"]);
        assert_eq!(rank_features(&rows, 10), ["c", "b", "d"]);
        let quiet = vec![row(false, &[("a", -1.0)]), row(false, &[("b", -2.0)])];
        assert_eq!(rank_features(&quiet, 5), ["b", "a"]);
        assert!(rank_features(&quiet, 0).is_empty());
    }

    #[test]
    fn formats() {
        assert_eq!(
            OutputFormat::from_path(Path::new("x/a.PNG")).unwrap(),
            OutputFormat::Png
        );
        assert_eq!(
            OutputFormat::from_path(Path::new("a.svg")).unwrap(),
            OutputFormat::Svg
        );
        for bad in ["a.jpg", "a", "png", "a.png.txt"] {
            assert!(matches!(
                OutputFormat::from_path(Path::new(bad)),
                Err(ReportError::UnsupportedFormat(_))
            ));
        }
    }
}
