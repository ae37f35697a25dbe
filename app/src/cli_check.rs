//! `check-reference`: one line per golden case, exit 1 on any mismatch.

use anyhow::Result;
use clap::Args;
use runtime::reference::{all_passed, check_fixture, top1_over};
use runtime::{ComputeDtype, LoadOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CheckArgs {
    /// Fixture folder: model/, images/, cases.json, golden.safetensors.
    pub fixture: PathBuf,
    /// Check this model instead of the fixture's own `model/` (e.g. a converted file).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Compute device: cpu, cuda[:N], metal[:N] or vulkan[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let opts = LoadOptions {
        dtype: ComputeDtype::F32,
        device: crate::cli_ask::open_device(&a.device)?,
        ..Default::default()
    };
    let reports = check_fixture(&a.fixture, a.model.as_deref(), &opts)?;
    let mut failed = 0;
    for r in &reports {
        println!("{}", r.line());
        failed += !r.passed() as usize;
    }
    println!("{} passed, {} failed", reports.len() - failed, failed);
    // Quantized models: math errors are reported, the verdict is the top-1 agreement floor.
    if let Some(min) = reports.iter().find_map(|r| r.tolerance.min_top1) {
        let a = top1_over(&reports).unwrap_or(1.0);
        let max_err = reports
            .iter()
            .filter_map(|r| r.logits_err)
            .fold(0f32, f32::max);
        println!(
            "quantized model: top-1 agreement {a:.3} (floor {min}), max |Δlogit| {max_err:.2e}"
        );
    }
    Ok(if all_passed(&reports) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
