//! The chart parts every panel shares: axes with given ticks, the mesh, version markers,
//! alert spans and the legend.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::load::Row;
use crate::scale::{TimeAxis, YScale};

use super::series::{spans, version_changes};
use super::{ALERT, Sizes, VERSION, msg};

/// A linear f64 axis whose tick marks are given (plotters' own would not fall on round
/// times, and `WithKeyPoints` over `RangedCoordf64` cannot take a label formatter).
pub(super) struct TickedAxis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
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

pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<TickedAxis, TickedAxis>>;

/// A panel's chart with time on x and `y_ticks` (transformed) on y.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_chart<'a, DB: DrawingBackend>(
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
pub(super) fn configure_mesh<DB: DrawingBackend>(
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

pub(super) fn draw_version_markers<DB: DrawingBackend>(
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

pub(super) fn draw_alert_spans<DB: DrawingBackend>(
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

pub(super) fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    sz: Sizes,
) -> Result<(), String> {
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
