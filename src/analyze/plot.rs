//! Plots of a report, as SVG and PNG: the latency CDFs, Receive latency by node group, and block
//! propagation over the run.
//!
//! Drawn with `plotters` (SVG backend, and the bitmap backend into a memory buffer that the `png`
//! crate encodes), using an embedded DejaVu Sans through plotters' `ab_glyph` feature, so no
//! system font or image library is needed. Everything drawn comes from the [`Report`], so plots can
//! be redrawn from a `report.json`.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::AnalyzeError;
use super::report::Report;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (960, 540);
/// Most groups drawn side by side; the largest (by nodes) are kept.
const MAX_GROUPS: usize = 24;

const RECEIVE: RGBColor = RGBColor(31, 119, 180);
const SYNC: RGBColor = RGBColor(255, 127, 14);
const CONS: RGBColor = RGBColor(44, 160, 44);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TTF; a failure would be a build defect caught by tests.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The plots, by file stem.
#[derive(Clone, Copy)]
enum Kind {
    Cdf,
    Groups,
    Propagation,
}

fn draw<DB: DrawingBackend>(
    kind: Kind,
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<(), String> {
    match kind {
        Kind::Cdf => cdf(root, r),
        Kind::Groups => groups(root, r),
        Kind::Propagation => propagation(root, r),
    }
}

/// Every plot as `(file name, bytes)`: SVG and PNG of each.
pub(crate) fn all(report: &Report, dir: &Path) -> Result<Vec<(String, Vec<u8>)>, AnalyzeError> {
    register_font();
    let plots = [
        ("latency_cdf", Kind::Cdf),
        ("latency_by_group", Kind::Groups),
        ("propagation", Kind::Propagation),
    ];
    let mut out = Vec::new();
    for (name, kind) in plots {
        let fail = |message: String| AnalyzeError::Plot {
            path: dir.join(name),
            message,
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            draw(kind, &root, report).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
            draw(kind, &root, report).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        out.push((format!("{name}.svg"), svg.into_bytes()));
        out.push((format!("{name}.png"), encode_png(&rgb).map_err(fail)?));
    }
    Ok(out)
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, SIZE.0, SIZE.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(rgb).map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn cdf<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let d = &r.distributions;
    let xmax = [&d.receive, &d.sync, &d.cons]
        .iter()
        .flat_map(|s| s.last().map(|p| p[0]))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.05;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Block latency CDF: {} nodes, {} blocks (from the generator's log time)",
                r.nodes, r.headline.blocks
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (s)")
        .y_desc("fraction of (block, node) pairs")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (name, pts, color) in [
        ("Receive", &d.receive, RECEIVE),
        ("Sync", &d.sync, SYNC),
        ("Cons", &d.cons, CONS),
    ] {
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p[0], p[1])),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn groups<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let pct = &r.headline.percentiles;
    // Up to three percentile columns: P50, P90, P99 when the table has them, else its last three.
    let mut cols: Vec<usize> = [50.0, 90.0, 99.0]
        .iter()
        .filter_map(|p| pct.iter().position(|x| (x - p).abs() < 1e-9))
        .collect();
    if cols.is_empty() {
        cols = (pct.len().saturating_sub(3)..pct.len()).collect();
    }
    let mut gs: Vec<_> = r.groups.iter().collect();
    let truncated = gs.len() > MAX_GROUPS;
    if truncated {
        gs.sort_by(|a, b| b.nodes.cmp(&a.nodes).then(a.group.cmp(&b.group)));
        gs.truncate(MAX_GROUPS);
        gs.sort_by(|a, b| a.group.cmp(&b.group));
    }
    let ymax = gs
        .iter()
        .flat_map(|g| cols.iter().filter_map(|c| g.receive.percentiles[*c]))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.15;
    let caption = if truncated {
        format!(
            "Receive latency by node group ({MAX_GROUPS} largest of {})",
            r.groups.len()
        )
    } else {
        "Receive latency by node group (pooled over blocks x nodes)".to_string()
    };
    let n = gs.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
        .map_err(err)?;
    let names: Vec<String> = gs.iter().map(|g| g.group.clone()).collect();
    let label = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            names.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&label)
        .y_desc("Receive latency (s)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let palette = [RECEIVE, SYNC, CONS];
    let width = 0.8 / cols.len().max(1) as f64;
    for (k, c) in cols.iter().enumerate() {
        let color = palette[k % palette.len()];
        let offset = -0.4 + width * k as f64;
        chart
            .draw_series(gs.iter().enumerate().filter_map(|(i, g)| {
                g.receive.percentiles[*c].map(|v| {
                    let x0 = i as f64 + offset;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], color.filled())
                })
            }))
            .map_err(err)?
            .label(super::stats::percentile_label(pct[*c]))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn propagation<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let mut pts: Vec<_> = r
        .coverage
        .blocks
        .iter()
        .filter_map(|b| b.generated_s.map(|t| (t, b)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let xmax = pts.last().map_or(1.0, |p| p.0).max(0.001) * 1.02;
    let ymax = pts
        .iter()
        .filter_map(|p| p.1.receive_max)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Block propagation over the run (Receive latency across nodes, per block)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("block generated at (s since the first block)")
        .y_desc("Receive latency (s)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    type Pick = fn(&super::report::BlockCoverage) -> Option<f64>;
    let series: [(&str, Pick, RGBColor); 3] = [
        ("P50 of nodes", |b| b.receive_p50, RECEIVE),
        ("P90 of nodes", |b| b.receive_p90, SYNC),
        ("slowest node", |b| b.receive_max, CONS),
    ];
    for (name, pick, color) in series {
        chart
            .draw_series(LineSeries::new(
                pts.iter().filter_map(|(t, b)| pick(b).map(|v| (*t, v))),
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}
