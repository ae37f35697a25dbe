//! Training metrics: one CSV row per step (`metrics.csv`) and the loss / exact-match curves as
//! PNG (plotters into an RGB buffer, saved with the `image` crate).

use crate::error::{Result, TrainError};
use plotters::prelude::*;
use std::path::Path;

pub const CSV_HEADER: &str =
    "step,epoch,loss,lr,grad_norm,tokens,step_seconds,eval_loss,eval_exact";

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub step: usize,
    pub epoch: f64,
    /// Mean cross-entropy per answer token of the step's batch.
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub step_seconds: f64,
    pub eval_loss: Option<f64>,
    /// Fraction of held-out answers reproduced exactly by greedy decoding.
    pub eval_exact: Option<f64>,
}

impl MetricRow {
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        format!(
            "{},{:.4},{:.6},{:.3e},{:.4},{},{:.4},{},{}",
            self.step,
            self.epoch,
            self.loss,
            self.lr,
            self.grad_norm,
            self.tokens,
            self.step_seconds,
            opt(self.eval_loss),
            opt(self.eval_exact)
        )
    }

    pub fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return None;
        }
        let opt = |s: &str| if s.is_empty() { None } else { s.parse().ok() };
        Some(MetricRow {
            step: f[0].parse().ok()?,
            epoch: f[1].parse().ok()?,
            loss: f[2].parse().ok()?,
            lr: f[3].parse().ok()?,
            grad_norm: f[4].parse().ok()?,
            tokens: f[5].parse().ok()?,
            step_seconds: f[6].parse().ok()?,
            eval_loss: opt(f[7]),
            eval_exact: opt(f[8]),
        })
    }
}

pub fn write_csv(path: &Path, rows: &[MetricRow]) -> Result<()> {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.to_csv());
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| TrainError::io(path, e))
}

pub fn read_csv(path: &Path) -> Result<Vec<MetricRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(MetricRow::from_csv)
        .collect())
}

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Failure only means plain labels are missing; the curves still draw.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

fn plot_err<E: std::fmt::Display>(e: E) -> TrainError {
    TrainError::Plot(e.to_string())
}

/// Exponential moving average, so noisy per-step losses read as a trend.
fn smooth(v: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(v.len());
    let mut acc: Option<f64> = None;
    for &(x, y) in v {
        let s = match acc {
            Some(a) => a + alpha * (y - a),
            None => y,
        };
        acc = Some(s);
        out.push((x, s));
    }
    out
}

const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Loss (train, smoothed, and eval) and eval exact match of one or more runs, side by side.
pub fn plot_runs(runs: &[(&str, &[MetricRow])], title: &str, path: &Path) -> Result<()> {
    register_fonts();
    let (w, h) = (1200u32, 460u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(w / 2);
        let max_step = runs
            .iter()
            .flat_map(|(_, r)| r.iter().map(|m| m.step))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let losses: Vec<f64> = runs
            .iter()
            .flat_map(|(_, r)| r.iter().flat_map(|m| [Some(m.loss), m.eval_loss]))
            .flatten()
            .filter(|v| v.is_finite())
            .collect();
        let y_max = losses.iter().cloned().fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let mut chart = ChartBuilder::on(&left)
            .margin(12)
            .caption("loss (nats / answer token)", ("sans-serif", 18))
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..max_step, 0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .draw()
            .map_err(plot_err)?;
        for (k, (name, rows)) in runs.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            let train: Vec<(f64, f64)> = rows.iter().map(|m| (m.step as f64, m.loss)).collect();
            chart
                .draw_series(LineSeries::new(smooth(&train, 0.1), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("{name} train"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            let eval: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|m| m.eval_loss.map(|e| (m.step as f64, e)))
                .collect();
            if !eval.is_empty() {
                chart
                    .draw_series(LineSeries::new(eval.clone(), c.mix(0.6).stroke_width(1)))
                    .map_err(plot_err)?
                    .label(format!("{name} eval"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.mix(0.6).stroke_width(1))
                    });
                chart
                    .draw_series(eval.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(plot_err)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;

        let mut acc = ChartBuilder::on(&right)
            .margin(12)
            .caption("held-out exact match (%)", ("sans-serif", 18))
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..max_step, 0f64..100f64)
            .map_err(plot_err)?;
        acc.configure_mesh()
            .x_desc("step")
            .draw()
            .map_err(plot_err)?;
        for (k, (name, rows)) in runs.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|m| m.eval_exact.map(|e| (m.step as f64, 100.0 * e)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            acc.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            acc.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_err)?;
        }
        acc.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| TrainError::Plot("plot buffer has the wrong size".into()))?;
    img.save(path)
        .map_err(|e| TrainError::Plot(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_round_trip() {
        let r = MetricRow {
            step: 7,
            epoch: 0.25,
            loss: 1.5,
            lr: 3e-4,
            grad_norm: 0.75,
            tokens: 120,
            step_seconds: 0.5,
            eval_loss: None,
            eval_exact: Some(0.5),
        };
        assert_eq!(MetricRow::from_csv(&r.to_csv()), Some(r));
    }
}
