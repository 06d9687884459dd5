//! The picture: a title, the anomaly score panel, an optional defect probability panel and
//! the feature contribution panel, drawn with plotters on a PNG or SVG backend.

use std::collections::HashMap;
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::OutputFormat;
use crate::error::ReportError;
use crate::font::{FAMILY, ensure_registered};
use crate::load::Row;
use crate::scale::{TimeAxis, YScale, fmt_time, linear_ticks};

const SCORE: RGBColor = RGBColor(31, 119, 180);
const THRESHOLD: RGBColor = RGBColor(255, 127, 14);
const ALERT: RGBColor = RGBColor(214, 39, 40);
const WARMUP: RGBColor = RGBColor(150, 150, 150);
const VERSION: RGBColor = RGBColor(70, 70, 70);
const DEFECT: RGBColor = RGBColor(148, 103, 189);
const FEATURE_COLOURS: [RGBColor; 10] = [
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

fn msg<E: Display>(e: E) -> String {
    e.to_string()
}

/// Font sizes and spacing, scaled with the picture.
#[derive(Clone, Copy)]
struct Sizes {
    s: f64,
}

impl Sizes {
    fn px(&self, v: f64) -> u32 {
        (v * self.s).round().max(1.0) as u32
    }
    fn font(&self, v: f64) -> TextStyle<'static> {
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

/// Largest distance between consecutive windows that is still drawn as connected: three
/// typical window steps (or lengths), so data gaps show as breaks in the lines.
fn gap_ms(rows: &[Row]) -> i64 {
    let mut steps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].start_ms - w[0].start_ms)
        .filter(|d| *d > 0)
        .collect();
    let mut lens: Vec<i64> = rows.iter().map(|r| r.end_ms - r.start_ms).collect();
    steps.sort_unstable();
    lens.sort_unstable();
    let step = steps.get(steps.len() / 2).copied().unwrap_or(0);
    let len = lens.get(lens.len() / 2).copied().unwrap_or(0);
    step.max(len).max(1) * 3
}

fn mid(r: &Row) -> f64 {
    (r.start_ms as f64 + r.end_ms as f64) / 2.0
}

/// Runs of consecutive rows (no gap) where `f` gives a value, as polylines.
fn polylines(
    rows: &[Row],
    gap: i64,
    f: impl Fn(usize, &Row) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let mut prev_start: Option<i64> = None;
    for (i, r) in rows.iter().enumerate() {
        let connected = prev_start.is_some_and(|p| r.start_ms - p <= gap);
        match f(i, r) {
            Some(v) => {
                if !connected && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push((mid(r), v));
                prev_start = Some(r.start_ms);
            }
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                prev_start = None;
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Time spans `[start, end]` covered by consecutive rows where `pred` holds.
fn spans(rows: &[Row], gap: i64, pred: impl Fn(&Row) -> bool) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut open: Option<(i64, i64)> = None;
    for r in rows {
        if pred(r) {
            open = match open {
                Some((s, e)) if r.start_ms <= e + gap => Some((s, e.max(r.end_ms))),
                Some(done) => {
                    out.push(done);
                    Some((r.start_ms, r.end_ms))
                }
                None => Some((r.start_ms, r.end_ms)),
            };
        } else if let Some(done) = open.take() {
            out.push(done);
        }
    }
    out.extend(open);
    out
}

/// The threshold as a step line: each window's value held until the next window starts.
fn threshold_steps(rows: &[Row], gap: i64, y: &YScale) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(t) = r.threshold else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        };
        let next = rows.get(i + 1);
        let right = match next {
            Some(n) if n.threshold.is_some() && n.start_ms - r.start_ms <= gap => {
                n.start_ms.min(r.end_ms.max(n.start_ms))
            }
            _ => r.end_ms,
        };
        let ty = y.fwd(t);
        cur.push((r.start_ms as f64, ty));
        cur.push((right as f64, ty));
        let connected =
            next.is_some_and(|n| n.threshold.is_some() && n.start_ms - r.start_ms <= gap);
        if !connected {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Window starts where the model version changes (to a known version), with the new name.
fn version_changes(rows: &[Row]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut prev: Option<&str> = None;
    for r in rows {
        if let Some(v) = r.model_version.as_deref() {
            if prev.is_some_and(|p| p != v) {
                out.push((r.start_ms, v.to_owned()));
            }
            prev = Some(v);
        }
    }
    out
}

/// A linear f64 axis whose tick marks are given (plotters' own would not fall on round
/// times, and `WithKeyPoints` over `RangedCoordf64` cannot take a label formatter).
struct TickedAxis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let pixels = f64::from(limit.1) - f64::from(limit.0);
        if span.abs() < f64::MIN_POSITIVE || !value.is_finite() {
            return limit.0;
        }
        let at = f64::from(limit.0) + pixels * (value - self.lo) / span;
        // Far outside values are clipped by the drawing area; keep them representable.
        at.clamp(-1e6, 1e6).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, TickedAxis>>;

/// A panel's chart with time on x and `y_ticks` (transformed) on y.
#[allow(clippy::too_many_arguments)]
fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    axis: &TimeAxis,
    (x0, x1): (i64, i64),
    (y0, y1): (f64, f64),
    y_ticks: Vec<f64>,
    sz: Sizes,
    bottom: bool,
) -> Result<Chart<'a, DB>, String> {
    let x_ticks: Vec<f64> = axis.ticks.iter().map(|t| *t as f64).collect();
    ChartBuilder::on(area)
        .margin_left(sz.px(12.0))
        .margin_right(sz.px(28.0))
        .margin_top(sz.px(4.0))
        .margin_bottom(sz.px(6.0))
        .caption(caption, sz.font(17.0))
        .x_label_area_size(sz.px(if bottom { 50.0 } else { 30.0 }))
        .y_label_area_size(sz.px(76.0))
        .build_cartesian_2d(
            TickedAxis {
                lo: x0 as f64,
                hi: x1 as f64,
                ticks: x_ticks,
            },
            TickedAxis {
                lo: y0,
                hi: y1,
                ticks: y_ticks,
            },
        )
        .map_err(msg)
}

#[allow(clippy::too_many_arguments)]
fn configure_mesh<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    axis: &TimeAxis,
    y: &YScale,
    y_ticks: &[f64],
    y_desc: &str,
    bottom: bool,
    sz: Sizes,
) -> Result<(), String> {
    let x_fmt = |v: &f64| axis.label(v.round() as i64);
    let y_fmt = |v: &f64| y.label(*v, y_ticks);
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_label_style(sz.font(13.0))
        .y_label_style(sz.font(13.0))
        .axis_desc_style(sz.font(14.0))
        .y_desc(y_desc)
        .bold_line_style(BLACK.mix(0.1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.mix(0.6));
    if bottom {
        mesh.x_desc("time (UTC)");
    }
    mesh.draw().map_err(msg)
}

fn draw_version_markers<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    rows: &[Row],
    (y0, y1): (f64, f64),
    label: bool,
    sz: Sizes,
) -> Result<(), String> {
    let changes = version_changes(rows);
    for (i, (at, version)) in changes.iter().enumerate() {
        let x = *at as f64;
        let series = chart
            .draw_series(DashedLineSeries::new(
                [(x, y0), (x, y1)],
                sz.px(6.0),
                sz.px(4.0),
                VERSION.stroke_width(sz.px(1.5)),
            ))
            .map_err(msg)?;
        if label && i == 0 {
            series
                .label("model version change")
                .legend(move |(lx, ly)| {
                    PathElement::new([(lx, ly), (lx + 20, ly)], VERSION.stroke_width(2))
                });
        }
        if label {
            let style = sz
                .font(13.0)
                .color(&VERSION)
                .pos(Pos::new(HPos::Left, VPos::Bottom));
            let text_y = y1 - (y1 - y0) * 0.02;
            chart
                .plotting_area()
                .draw(&Text::new(format!(" {version}"), (x, text_y), style))
                .map_err(msg)?;
        }
    }
    Ok(())
}

fn draw_alert_spans<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    rows: &[Row],
    gap: i64,
    (y0, y1): (f64, f64),
    label: bool,
) -> Result<(), String> {
    let alert_spans = spans(rows, gap, |r| r.alert);
    if !alert_spans.is_empty() {
        let series = chart
            .draw_series(alert_spans.iter().map(|(s, e)| {
                Rectangle::new([(*s as f64, y0), (*e as f64, y1)], ALERT.mix(0.13).filled())
            }))
            .map_err(msg)?;
        if label {
            series.label("alert open").legend(|(lx, ly)| {
                Rectangle::new([(lx, ly - 6), (lx + 20, ly + 6)], ALERT.mix(0.25).filled())
            });
        }
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>, sz: Sizes) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(sz.px(8.0))
        .label_font(sz.font(13.0))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(msg)
}

fn score_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture<'_>,
    axis: &TimeAxis,
    xr: (i64, i64),
    gap: i64,
    sz: Sizes,
    bottom: bool,
) -> Result<(), String> {
    let rows = pic.rows;
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.score, r.threshold])
        .flatten()
        .collect();
    let y = YScale::choose(values.iter().copied());
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    let (y0, y1) = if values.is_empty() {
        (0.0, 1.0)
    } else {
        y.range(lo, hi)
    };
    let max_y_ticks = (f64::from(area.dim_in_pixel().1) / (38.0 * sz.s)).clamp(2.0, 10.0) as usize;
    let y_ticks = y.ticks(y0, y1, max_y_ticks);
    let caption = if values.is_empty() {
        "Anomaly score — no scores yet (model warming up)".to_owned()
    } else {
        format!("Anomaly score{}", y.note())
    };
    let mut chart = build_chart(
        area,
        &caption,
        axis,
        xr,
        (y0, y1),
        y_ticks.clone(),
        sz,
        bottom,
    )?;
    configure_mesh(&mut chart, axis, &y, &y_ticks, "anomaly score", bottom, sz)?;

    // Backgrounds first: warm-up and alert spans.
    let warm = spans(rows, gap, |r| r.score.is_none());
    if !warm.is_empty() {
        chart
            .draw_series(warm.iter().map(|(s, e)| {
                Rectangle::new(
                    [(*s as f64, y0), (*e as f64, y1)],
                    WARMUP.mix(0.12).filled(),
                )
            }))
            .map_err(msg)?
            .label("no score (warm-up)")
            .legend(|(lx, ly)| {
                Rectangle::new([(lx, ly - 6), (lx + 20, ly + 6)], WARMUP.mix(0.3).filled())
            });
    }
    draw_alert_spans(&mut chart, rows, gap, (y0, y1), true)?;
    draw_version_markers(&mut chart, rows, (y0, y1), true, sz)?;

    // Threshold step line.
    for (i, seg) in threshold_steps(rows, gap, &y).into_iter().enumerate() {
        let series = chart
            .draw_series(DashedLineSeries::new(
                seg,
                sz.px(8.0),
                sz.px(4.0),
                THRESHOLD.stroke_width(sz.px(2.0)),
            ))
            .map_err(msg)?;
        if i == 0 {
            series.label("threshold").legend(|(lx, ly)| {
                PathElement::new([(lx, ly), (lx + 20, ly)], THRESHOLD.stroke_width(2))
            });
        }
    }

    // Score line, then the alerted windows as red points on top.
    for (i, seg) in polylines(rows, gap, |_, r| r.score.map(|s| y.fwd(s)))
        .into_iter()
        .enumerate()
    {
        let lone = seg.len() == 1;
        let series = chart
            .draw_series(LineSeries::new(seg.clone(), SCORE.stroke_width(sz.px(1.6))))
            .map_err(msg)?;
        if i == 0 {
            series.label("anomaly score").legend(|(lx, ly)| {
                PathElement::new([(lx, ly), (lx + 20, ly)], SCORE.stroke_width(2))
            });
        }
        if lone {
            chart
                .draw_series(
                    seg.iter()
                        .map(|p| Circle::new(*p, sz.px(2.0), SCORE.filled())),
                )
                .map_err(msg)?;
        }
    }
    let alerted: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.alert)
        .filter_map(|r| r.score.map(|s| (mid(r), y.fwd(s))))
        .collect();
    if !alerted.is_empty() {
        chart
            .draw_series(
                alerted
                    .iter()
                    .map(|p| Circle::new(*p, sz.px(2.5), ALERT.filled())),
            )
            .map_err(msg)?
            .label("alerted window")
            .legend(|(lx, ly)| Circle::new((lx + 10, ly), 3, ALERT.filled()));
    }
    legend(&mut chart, sz)
}

fn defect_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture<'_>,
    axis: &TimeAxis,
    xr: (i64, i64),
    gap: i64,
    sz: Sizes,
    bottom: bool,
) -> Result<(), String> {
    let y = YScale::Linear;
    let (y0, y1) = (-0.04, 1.04);
    let plot_h = f64::from(area.dim_in_pixel().1) - f64::from(sz.px(66.0));
    let y_ticks = if plot_h < 70.0 * sz.s {
        vec![0.0, 1.0]
    } else {
        linear_ticks(0.0, 1.0, 4)
    };
    let mut chart = build_chart(
        area,
        "Defect probability",
        axis,
        xr,
        (y0, y1),
        y_ticks.clone(),
        sz,
        bottom,
    )?;
    configure_mesh(&mut chart, axis, &y, &y_ticks, "P(defect)", bottom, sz)?;
    draw_alert_spans(&mut chart, pic.rows, gap, (y0, y1), false)?;
    draw_version_markers(&mut chart, pic.rows, (y0, y1), false, sz)?;
    for seg in polylines(pic.rows, gap, |_, r| r.defect_prob) {
        if seg.len() == 1 {
            chart
                .draw_series(
                    seg.iter()
                        .map(|p| Circle::new(*p, sz.px(2.0), DEFECT.filled())),
                )
                .map_err(msg)?;
        } else {
            chart
                .draw_series(LineSeries::new(seg, DEFECT.stroke_width(sz.px(1.6))))
                .map_err(msg)?;
        }
    }
    Ok(())
}

fn feature_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pic: &Picture<'_>,
    axis: &TimeAxis,
    xr: (i64, i64),
    gap: i64,
    sz: Sizes,
    bottom: bool,
) -> Result<(), String> {
    let rows = pic.rows;
    // Per feature, per row: its contribution when among the row's top features.
    let index: HashMap<&str, usize> = pic
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_str(), i))
        .collect();
    let mut per_feature: Vec<Vec<Option<f64>>> = vec![vec![None; rows.len()]; pic.features.len()];
    for (ri, r) in rows.iter().enumerate() {
        for (name, c) in &r.top {
            if let Some(&fi) = index.get(name.as_str()) {
                per_feature[fi][ri] = Some(*c);
            }
        }
    }
    let values: Vec<f64> = per_feature.iter().flatten().flatten().copied().collect();
    let y = YScale::choose(values.iter().copied());
    let (lo, hi) = values
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let (y0, y1) = y.range(lo, hi);
    let max_y_ticks = (f64::from(area.dim_in_pixel().1) / (38.0 * sz.s)).clamp(2.0, 10.0) as usize;
    let y_ticks = y.ticks(y0, y1, max_y_ticks);
    let caption = format!(
        "Top {} feature contributions to log-density{} — negative pushes toward anomaly",
        pic.features.len(),
        y.note()
    );
    let mut chart = build_chart(
        area,
        &caption,
        axis,
        xr,
        (y0, y1),
        y_ticks.clone(),
        sz,
        bottom,
    )?;
    configure_mesh(&mut chart, axis, &y, &y_ticks, "contribution", bottom, sz)?;
    draw_alert_spans(&mut chart, rows, gap, (y0, y1), false)?;
    draw_version_markers(&mut chart, rows, (y0, y1), false, sz)?;
    let (x0, x1) = (xr.0 as f64, xr.1 as f64);
    chart
        .draw_series(LineSeries::new(
            [(x0, y.fwd(0.0)), (x1, y.fwd(0.0))],
            BLACK.mix(0.45).stroke_width(1),
        ))
        .map_err(msg)?;

    for (fi, name) in pic.features.iter().enumerate() {
        let colour = FEATURE_COLOURS[fi % FEATURE_COLOURS.len()];
        let vals = &per_feature[fi];
        let lines = polylines(rows, gap, |i, _| {
            vals.get(i).copied().flatten().map(|v| y.fwd(v))
        });
        let mut first = true;
        for seg in lines {
            let points = chart
                .draw_series(
                    seg.iter()
                        .map(|p| Circle::new(*p, sz.px(1.7), colour.filled())),
                )
                .map_err(msg)?;
            if first {
                points.label(name.as_str()).legend(move |(lx, ly)| {
                    PathElement::new([(lx, ly), (lx + 20, ly)], colour.stroke_width(3))
                });
                first = false;
            }
            if seg.len() > 1 {
                chart
                    .draw_series(LineSeries::new(seg, colour.stroke_width(sz.px(1.2))))
                    .map_err(msg)?;
            }
        }
    }
    legend(&mut chart, sz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_min: i64, score: Option<f64>, alert: bool, version: Option<&str>) -> Row {
        Row {
            start_ms: start_min * 60_000,
            end_ms: (start_min + 1) * 60_000,
            line: "l".into(),
            score,
            threshold: score.map(|_| 5.0),
            alert,
            model_version: version.map(str::to_owned),
            defect_prob: None,
            top: Vec::new(),
        }
    }

    #[test]
    fn spans_and_polylines_break_at_gaps() {
        let rows = vec![
            row(0, None, false, None),
            row(1, Some(1.0), false, Some("v1")),
            row(2, Some(9.0), true, Some("v1")),
            row(3, Some(8.0), true, Some("v2")),
            // a data gap of 20 minutes
            row(23, Some(7.0), true, Some("v2")),
            row(24, Some(1.0), false, Some("v2")),
        ];
        let gap = gap_ms(&rows);
        assert_eq!(gap, 180_000);
        assert_eq!(
            spans(&rows, gap, |r| r.alert),
            vec![(120_000, 240_000), (23 * 60_000, 24 * 60_000)]
        );
        let lines = polylines(&rows, gap, |_, r| r.score);
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(version_changes(&rows), vec![(180_000, "v2".to_owned())]);
        let steps = threshold_steps(&rows, gap, &YScale::Linear);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].first(), Some(&(60_000.0, 5.0)));
        assert_eq!(steps[0].last(), Some(&(240_000.0, 5.0)));
    }
}
