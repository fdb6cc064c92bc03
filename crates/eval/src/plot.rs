//! PNG plots of an evaluation: ROC curve, score histograms, reliability
//! diagram.
//!
//! Text (titles, axis labels) needs a TrueType font. None is bundled: the
//! font named by `$CANDOR_PLOT_FONT`, or DejaVu Sans from the usual system
//! locations, is loaded at run time if present; without one the plots are
//! drawn without any text.

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{EvalError, Result};
use crate::metrics::{ReliabilityBin, RocPoint};

const W: u32 = 640;
const H: u32 = 480;
const FONT: &str = "candor-sans";

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// Whether a font could be registered (done once per process).
pub fn text_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let env = std::env::var("CANDOR_PLOT_FONT").ok();
        for path in env.iter().map(String::as_str).chain(FONT_CANDIDATES) {
            if let Ok(bytes) = std::fs::read(path) {
                // Registered fonts must live for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

fn perr(name: &str) -> impl Fn(String) -> EvalError + '_ {
    move |message| EvalError::Plot {
        name: name.to_string(),
        message,
    }
}

fn encode_png(name: &str, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| perr(name)(e.to_string()))?;
        w.write_image_data(rgb)
            .map_err(|e| perr(name)(e.to_string()))?;
        w.finish().map_err(|e| perr(name)(e.to_string()))?;
    }
    Ok(out)
}

/// Draw into an RGB buffer with `f`, then encode as PNG.
fn render<F>(name: &str, f: F) -> Result<Vec<u8>>
where
    F: FnOnce(
        DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        bool,
    ) -> std::result::Result<(), String>,
{
    let text = text_available();
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(name)(e.to_string()))?;
        f(root.clone(), text).map_err(perr(name))?;
        root.present().map_err(|e| perr(name)(e.to_string()))?;
    }
    encode_png(name, &buf)
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// ROC curve; with `log_x` the FPR axis is log10 from `1e-4` (or `1/N-`) to 1.
pub fn roc_png(points: &[RocPoint], log_x: bool, min_fpr: f64) -> Result<Vec<u8>> {
    render("roc.png", |root, text| {
        let lo = min_fpr.clamp(1e-6, 0.1).log10();
        let (x0, x1) = if log_x { (lo, 0.0) } else { (0.0, 1.0) };
        let fx = |f: f64| {
            if log_x {
                f.max(min_fpr).log10().max(lo)
            } else {
                f
            }
        };
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            let title = if log_x { "ROC (log FPR)" } else { "ROC" };
            b.caption(title, (FONT, 20))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let mut chart = b.build_cartesian_2d(x0..x1, 0f64..1f64).map_err(s)?;
        let fmt_x = move |x: &f64| {
            if log_x {
                format!("{:.0e}", 10f64.powf(*x))
            } else {
                format!("{x:.1}")
            }
        };
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("false positive rate (authentic flagged)")
                .y_desc("true positive rate")
                .label_style((FONT, 12))
                .x_label_formatter(&fmt_x);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(s)?;
        if !log_x {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
                .map_err(s)?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (fx(p.fpr), p.tpr)),
                BLUE.stroke_width(2),
            ))
            .map_err(s)?;
        Ok(())
    })
}

/// Score histograms per class (fraction of each class per bin), with
/// vertical lines at `marks` (thresholds).
pub fn hist_png(
    lo: f64,
    hi: f64,
    authentic: &[usize],
    manipulated: &[usize],
    marks: &[f64],
) -> Result<Vec<u8>> {
    render("hist.png", |root, text| {
        let frac = |c: &[usize]| -> Vec<f64> {
            let n: usize = c.iter().sum();
            c.iter()
                .map(|&x| if n == 0 { 0.0 } else { x as f64 / n as f64 })
                .collect()
        };
        let (fa, fm) = (frac(authentic), frac(manipulated));
        let ymax = fa
            .iter()
            .chain(&fm)
            .fold(0.0f64, |a, &b| a.max(b))
            .max(1e-3)
            * 1.1;
        let nb = authentic.len().max(1);
        let width = (hi - lo) / nb as f64;
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            b.caption("Scores: authentic (blue) vs manipulated (red)", (FONT, 18))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let mut chart = b.build_cartesian_2d(lo..hi, 0f64..ymax).map_err(s)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("score")
                .y_desc("fraction of class")
                .label_style((FONT, 12));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(s)?;
        for (fr, color) in [(&fa, BLUE), (&fm, RED)] {
            chart
                .draw_series(fr.iter().enumerate().map(|(i, &v)| {
                    let x0 = lo + i as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, v)], color.mix(0.35).filled())
                }))
                .map_err(s)?;
        }
        for &m in marks.iter().filter(|m| (lo..=hi).contains(*m)) {
            chart
                .draw_series(LineSeries::new(
                    [(m, 0.0), (m, ymax)],
                    BLACK.stroke_width(1),
                ))
                .map_err(s)?;
        }
        Ok(())
    })
}

/// Reliability diagram: mean predicted probability vs observed fraction of
/// manipulated items per non-empty bin, with the diagonal.
pub fn reliability_png(bins: &[ReliabilityBin]) -> Result<Vec<u8>> {
    render("reliability.png", |root, text| {
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            b.caption("Reliability", (FONT, 20))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let mut chart = b.build_cartesian_2d(0f64..1f64, 0f64..1f64).map_err(s)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("mean predicted probability")
                .y_desc("fraction manipulated")
                .label_style((FONT, 12));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(s)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(s)?;
        let pts: Vec<(f64, f64)> = bins
            .iter()
            .filter_map(|b| Some((b.mean_score?, b.frac_manipulated?)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2)))
            .map_err(s)?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(s)?;
        Ok(())
    })
}
