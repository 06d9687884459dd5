//! The panels: anomaly score, defect probability and feature contributions.

use std::collections::HashMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::scale::{TimeAxis, YScale, linear_ticks};

use super::chart::{build_chart, configure_mesh, draw_alert_spans, draw_version_markers, legend};
use super::series::{mid, polylines, spans, threshold_steps};
use super::{ALERT, DEFECT, FEATURE_COLOURS, Picture, SCORE, Sizes, THRESHOLD, WARMUP, msg};

pub(super) fn score_panel<DB: DrawingBackend>(
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

pub(super) fn defect_panel<DB: DrawingBackend>(
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

pub(super) fn feature_panel<DB: DrawingBackend>(
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
