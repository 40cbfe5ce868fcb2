//! The pictures `fanrush plan --chart` and `fanrush simulate --chart` draw,
//! as SVG with plotters: what the operator wants to *see* of a plan (the
//! provisioned concurrency held for each event, against the account's
//! clamp) and of a spike (each second's arrivals, what served or refused
//! them, and the line).

use chrono::{DateTime, Duration, Utc};
use fanrush::rules::scaling::ScalingPlan;
use fanrush_ops::simulate::Second;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (1000, 520);
const FONT: &str = "sans-serif";

/// A series' colour: plotters' 99-colour palette, picked by index.
fn colour(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(i).to_rgba().rgb();
    RGBColor(r, g, b)
}

fn drawing_error(e: impl std::fmt::Display) -> String {
    format!("drawing the chart: {e}")
}

/// The plan: each event's environments stacked over time (from its
/// scale-out to its scale-in), the total the scheduler sets (clamped), and
/// the account's clamp when it is known.
pub fn plan(path: &Path, plan: &ScalingPlan) -> Result<(), String> {
    let actions = plan.actions();
    let (Some(first), Some(last)) = (actions.first(), actions.last()) else {
        return Err("the plan is empty: no event to draw".into());
    };
    let start = first.at - Duration::minutes(10);
    let end = last.at + Duration::minutes(10);
    let minutes = |t: DateTime<Utc>| (t - start).num_seconds() as f64 / 60.0;
    let top = actions.iter().map(|a| a.wanted).chain(plan.grantable).max().unwrap_or(1).max(1) as f64 * 1.15;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Provisioned concurrency on entry-api:live", (FONT, 22))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes(end), 0.0..top)
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc("environments")
        .light_line_style(BLACK.mix(0.03))
        .x_label_formatter(&|m| (start + Duration::seconds((m * 60.0) as i64)).format("%m-%d %H:%M").to_string())
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(drawing_error)?;

    // Each event is a band over the events before it, between its window's
    // edges: the steps of the plan's own breakpoints.
    let breaks: Vec<DateTime<Utc>> = actions.iter().map(|a| a.at).collect();
    let mut below = vec![0.0; breaks.len()];
    for (i, need) in plan.needs.iter().enumerate() {
        let above: Vec<f64> = breaks
            .iter()
            .zip(&below)
            .map(|(t, b)| b + if need.from <= *t && *t < need.until { need.environments as f64 } else { 0.0 })
            .collect();
        let mut outline = steps(&breaks, &above, &minutes);
        outline.extend(steps(&breaks, &below, &minutes).into_iter().rev());
        let c = colour(i);
        chart
            .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.45).filled())))
            .map_err(drawing_error)?
            .label(format!("{} ({} environments)", need.event, need.environments))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.mix(0.45).filled()));
        below = above;
    }
    let set: Vec<f64> = actions.iter().map(|a| a.provisioned_concurrency as f64).collect();
    chart
        .draw_series(LineSeries::new(steps(&breaks, &set, &minutes), BLACK.stroke_width(2)))
        .map_err(drawing_error)?
        .label("set by the scheduler")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    if let Some(clamp) = plan.grantable {
        let clamp = clamp as f64;
        chart
            .draw_series(DashedLineSeries::new([(0.0, clamp), (minutes(end), clamp)], 8, 5, RED.stroke_width(2)))
            .map_err(drawing_error)?
            .label(format!("the account's clamp ({clamp:.0})"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], RED.stroke_width(2)));
    }
    legend(&mut chart.configure_series_labels()).draw().map_err(drawing_error)?;
    root.present().map_err(drawing_error)
}

/// Both charts' legend: top right, over a light box.
fn legend<'s, 'a, 'b, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    labels: &'s mut plotters::chart::SeriesLabelStyle<'a, 'b, DB, CT>,
) -> &'s mut plotters::chart::SeriesLabelStyle<'a, 'b, DB, CT> {
    labels
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
}

/// A step function's outline: `values[k]` holds from `breaks[k]` to the next.
fn steps(breaks: &[DateTime<Utc>], values: &[f64], minutes: &dyn Fn(DateTime<Utc>) -> f64) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(values.len() * 2);
    for (k, v) in values.iter().enumerate() {
        points.push((minutes(breaks[k]), *v));
        if let Some(next) = breaks.get(k + 1) {
            points.push((minutes(*next), *v));
        }
    }
    points
}

/// The spike, second by second: requests per second by what became of them
/// (left axis) and the fans waiting in line (right axis).
pub fn simulation(path: &Path, seconds: &[Second]) -> Result<(), String> {
    if seconds.is_empty() {
        return Err("the simulation has no seconds to draw".into());
    }
    let n = seconds.len() as f64;
    type Pick = fn(&Second) -> u64;
    let series: [(&str, Pick); 6] = [
        ("arrivals (new fans)", |s| s.arrivals),
        ("served (requests a function ran)", |s| s.served),
        ("throttled by API Gateway", |s| s.throttled_by_api_gateway),
        ("throttled by Lambda", |s| s.throttled_by_lambda),
        ("refused by Redis", |s| s.refused_by_redis),
        ("admitted", |s| s.admitted),
    ];
    let top = seconds.iter().flat_map(|s| series.iter().map(move |(_, f)| f(s))).max().unwrap_or(0).max(1) as f64;
    let waiting_top = seconds.iter().map(|s| s.waiting).max().unwrap_or(0).max(1) as f64;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(drawing_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("The spike, second by second", (FONT, 22))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..n, 0.0..top * 1.1)
        .map_err(drawing_error)?
        .set_secondary_coord(0.0..n, 0.0..waiting_top * 1.1);
    chart
        .configure_mesh()
        .x_desc("seconds from the first arrival")
        .y_desc("per second")
        .light_line_style(BLACK.mix(0.03))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(drawing_error)?;
    chart
        .configure_secondary_axes()
        .y_desc("fans waiting in line")
        .label_style((FONT, 12))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(drawing_error)?;
    for (i, (label, pick)) in series.iter().enumerate() {
        let c = colour(i);
        let points = seconds.iter().enumerate().map(|(t, s)| (t as f64 + 0.5, pick(s) as f64));
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(drawing_error)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], c.stroke_width(2)));
    }
    let waiting = seconds.iter().enumerate().map(|(t, s)| (t as f64 + 0.5, s.waiting as f64));
    chart
        .draw_secondary_series(DashedLineSeries::new(waiting, 6, 4, BLACK.stroke_width(2)))
        .map_err(drawing_error)?
        .label("waiting in line (right axis)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    legend(&mut chart.configure_series_labels()).draw().map_err(drawing_error)?;
    root.present().map_err(drawing_error)
}
