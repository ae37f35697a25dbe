//! `--compare lora,full`: the same data, seed and schedule under several methods, one report.

use crate::error::{Result, TrainError};
use crate::metrics::{plot_runs, read_csv};
use crate::train::{train, Method, Summary, TrainConfig};
use std::fmt::Write;

/// Trains each method into `cfg.out/<method>` and writes `cfg.out/report.md`, `report.json` and
/// `compare.png`.
pub fn compare(cfg: &TrainConfig, methods: &[Method]) -> Result<Vec<Summary>> {
    if methods.is_empty() {
        return Err(TrainError::Config(
            "--compare needs at least one method".into(),
        ));
    }
    let mut summaries = Vec::new();
    let mut curves = Vec::new();
    for &m in methods {
        let mut c = cfg.clone();
        c.method = m;
        c.out = cfg.out.join(m.to_string());
        let s = train(&c)?;
        curves.push((m.to_string(), read_csv(&c.out.join("metrics.csv"))?));
        summaries.push(s);
    }
    let refs: Vec<(&str, &[crate::metrics::MetricRow])> = curves
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_slice()))
        .collect();
    plot_runs(
        &refs,
        "monovlm train --compare",
        &cfg.out.join("compare.png"),
    )?;
    let mut md = String::from("# LoRA vs full fine-tuning\n\n");
    let _ = writeln!(
        md,
        "Same data (`{}`), seed {}, {} steps × batch {} × accumulation {}, peak lr {}.\n",
        cfg.data.display(),
        cfg.seed,
        cfg.steps,
        cfg.batch,
        cfg.grad_accum,
        cfg.lr
    );
    md.push_str("| method | trainable params | % of model | peak RSS (MiB) | step time (s) | final train loss | eval loss | eval exact match |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for s in &summaries {
        let (el, ee) = match &s.eval {
            Some(e) => (
                format!("{:.4}", e.loss),
                format!("{:.1} %", 100.0 * e.exact),
            ),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} % | {:.0} | {:.3} | {:.4} | {} | {} |",
            s.method,
            s.trainable_parameters,
            100.0 * s.trainable_parameters as f64 / s.total_parameters.max(1) as f64,
            s.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            s.mean_step_seconds,
            s.final_loss,
            el,
            ee
        );
    }
    md.push_str("\n![curves](compare.png)\n");
    std::fs::write(cfg.out.join("report.md"), md).map_err(|e| TrainError::io(&cfg.out, e))?;
    let json =
        serde_json::to_string_pretty(&summaries).map_err(|e| TrainError::Config(e.to_string()))?;
    std::fs::write(cfg.out.join("report.json"), json).map_err(|e| TrainError::io(&cfg.out, e))?;
    Ok(summaries)
}
