//! The picture: a title, the anomaly score panel, an optional defect probability panel and
//! the feature contribution panel, drawn with plotters on a PNG or SVG backend.
//!
//! # Layout
//!
//! * this file: the picture's frame (title, panel heights), colours and sizes, and the
//!   file it is written to;
//! * `series.rs`: rows to drawable geometry (polylines, spans, steps), pure;
//! * `chart.rs`: the shared chart parts (axes, mesh, markers, legend);
//! * `panels.rs`: the score, defect probability and feature contribution panels.

mod chart;
mod panels;
mod series;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::OutputFormat;
use crate::error::ReportError;
use crate::font::{FAMILY, ensure_registered};
use crate::load::Row;
use crate::scale::{TimeAxis, fmt_time};

use panels::{defect_panel, feature_panel, score_panel};
use series::gap_ms;

pub(super) const SCORE: RGBColor = RGBColor(31, 119, 180);
pub(super) const THRESHOLD: RGBColor = RGBColor(255, 127, 14);
pub(super) const ALERT: RGBColor = RGBColor(214, 39, 40);
pub(super) const WARMUP: RGBColor = RGBColor(150, 150, 150);
pub(super) const VERSION: RGBColor = RGBColor(70, 70, 70);
pub(super) const DEFECT: RGBColor = RGBColor(148, 103, 189);
pub(super) const FEATURE_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// Everything the picture needs, in plotting units (x in ms since the epoch as f64).
pub(crate) struct Picture<'a> {
    pub machine: &'a str,
    pub line: &'a str,
    pub rows: &'a [Row],
    pub features: &'a [String],
    pub alerted: usize,
    pub versions: &'a [String],
}

/// Draws the picture into a temporary file next to `out` and renames it over `out`, so a
/// failed render leaves no half-written picture.
pub(crate) fn render_file(
    format: OutputFormat,
    out: &Path,
    size: (u32, u32),
    pic: &Picture<'_>,
) -> Result<(), ReportError> {
    ensure_registered()?;
    let draw_err = |message: String| ReportError::Draw {
        path: out.to_path_buf(),
        message,
    };
    let tmp = temp_path(out, format);
    let result = match format {
        OutputFormat::Png => {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            paint(&root, pic).and_then(|()| root.present().map_err(msg))
        }
        OutputFormat::Svg => {
            let root = SVGBackend::new(&tmp, size).into_drawing_area();
            paint(&root, pic).and_then(|()| root.present().map_err(msg))
        }
    };
    let result = result.and_then(|()| fs::rename(&tmp, out).map_err(msg));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(draw_err)
}

fn temp_path(out: &Path, format: OutputFormat) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = match format {
        OutputFormat::Png => "png",
        OutputFormat::Svg => "svg",
    };
    let name = format!(".{stem}.partial-{}.{ext}", std::process::id());
    out.with_file_name(name)
}

pub(super) fn msg<E: Display>(e: E) -> String {
    e.to_string()
}

/// Font sizes and spacing, scaled with the picture.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    pub(super) s: f64,
}

impl Sizes {
    pub(super) fn px(&self, v: f64) -> u32 {
        (v * self.s).round().max(1.0) as u32
    }
    pub(super) fn font(&self, v: f64) -> TextStyle<'static> {
        TextStyle::from((FAMILY, v * self.s).into_font())
    }
}

fn paint<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pic: &Picture<'_>,
) -> Result<(), String> {
    let (w, h) = root.dim_in_pixel();
    let sz = Sizes {
        // Text below ~10 px is unreadable with the rasteriser: small pictures get
        // relatively larger text.
        s: (f64::from(w) / 1400.0)
            .min(f64::from(h) / 900.0)
            .clamp(0.78, 4.0),
    };
    root.fill(&WHITE).map_err(msg)?;

    let Some(first) = pic.rows.first() else {
        return Ok(());
    };
    let x_lo = first.start_ms;
    let x_hi = pic
        .rows
        .iter()
        .map(|r| r.end_ms)
        .max()
        .unwrap_or(x_lo)
        .max(x_lo + 1);
    let pad = ((x_hi - x_lo) / 100).max(1);
    let (x0, x1) = (x_lo - pad, x_hi + pad);
    let max_ticks = (f64::from(w) / (110.0 * sz.s)).clamp(2.0, 14.0) as usize;
    let axis = TimeAxis::new(x0, x1, max_ticks);
    let gap = gap_ms(pic.rows);

    // Title.
    let title_h = sz.px(78.0);
    let (title_area, body) = root.split_vertically(title_h);
    draw_title(&title_area, pic, x_lo, x_hi, sz)?;

    // Panels.
    let has_defect = pic.rows.iter().any(|r| r.defect_prob.is_some());
    let has_features = !pic.features.is_empty();
    let mut weights = vec![5.0];
    if has_defect {
        weights.push(1.6);
    }
    if has_features {
        weights.push(3.6);
    }
    let body_h = f64::from(body.dim_in_pixel().1);
    let breaks = panel_breaks(&weights, body_h, sz);
    let areas = body.split_by_breakpoints::<i32, i32, _, _>([], breaks);
    let mut areas = areas.into_iter();
    let last_is = |i: usize| i == weights.len() - 1;
    let mut index = 0;
    if let Some(area) = areas.next() {
        score_panel(&area, pic, &axis, (x0, x1), gap, sz, last_is(index))?;
        index += 1;
    }
    if has_defect && let Some(area) = areas.next() {
        defect_panel(&area, pic, &axis, (x0, x1), gap, sz, last_is(index))?;
        index += 1;
    }
    if has_features && let Some(area) = areas.next() {
        feature_panel(&area, pic, &axis, (x0, x1), gap, sz, last_is(index))?;
    }
    Ok(())
}

fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture<'_>,
    x_lo: i64,
    x_hi: i64,
    sz: Sizes,
) -> Result<(), String> {
    let title = format!(
        "Machine {}  ·  line {}  ·  {} – {} UTC",
        pic.machine,
        pic.line,
        fmt_time(x_lo),
        fmt_time(x_hi)
    );
    let models = match pic.versions {
        [] => "no model yet (warm-up only)".to_owned(),
        [one] => format!("model {one}"),
        many => format!("models {}", many.join(" → ")),
    };
    let subtitle = format!(
        "{} windows  ·  {} alerted  ·  {}",
        pic.rows.len(),
        pic.alerted,
        models
    );
    let left = sz.px(18.0) as i32;
    area.draw(&Text::new(
        title,
        (left, sz.px(14.0) as i32),
        sz.font(26.0).color(&BLACK),
    ))
    .map_err(msg)?;
    area.draw(&Text::new(
        subtitle,
        (left, sz.px(50.0) as i32),
        sz.font(16.0).color(&RGBColor(80, 80, 80)),
    ))
    .map_err(msg)
}

/// Where to cut the body between panels: each panel gets its fixed overhead (caption,
/// time labels, margins) plus its weight's share of the remaining height.
fn panel_breaks(weights: &[f64], body_h: f64, sz: Sizes) -> Vec<i32> {
    let n = weights.len();
    let overhead = |i: usize| f64::from(sz.px(if i + 1 == n { 86.0 } else { 66.0 }));
    let fixed: f64 = (0..n).map(overhead).sum();
    let total: f64 = weights.iter().sum();
    let free = (body_h - fixed).max(0.0);
    let mut breaks = Vec::new();
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate().take(n.saturating_sub(1)) {
        acc += if free > 0.0 {
            overhead(i) + free * w / total
        } else {
            body_h * w / total
        };
        breaks.push(acc.round() as i32);
    }
    breaks
}
