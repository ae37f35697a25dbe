//! `check-reference`: one line per golden case, exit 1 on any mismatch.

use anyhow::Result;
use clap::Args;
use runtime::reference::check_fixture;
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
}

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let opts = LoadOptions {
        dtype: ComputeDtype::F32,
        ..Default::default()
    };
    let reports = check_fixture(&a.fixture, a.model.as_deref(), &opts)?;
    let mut failed = 0;
    for r in &reports {
        println!("{}", r.line());
        failed += !r.passed() as usize;
    }
    println!("{} passed, {} failed", reports.len() - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
