//! `monovlm synth`: writes a seeded synthetic training set (PNG images + LLaVA-style JSONL).

use anyhow::{Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use trainer::synth::{write_dataset_with_progress, FontSet, SynthConfig, Task, DEFAULT_FONTS_DIR};

#[derive(Args)]
pub struct SynthArgs {
    /// Output folder: gets images/NNNNNN.png and data.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Number of records.
    #[arg(long)]
    count: u64,
    /// Seed; the same seed and fonts give byte-identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Comma-separated image tasks: numbers, arith, text, table, receipt.
    #[arg(long, default_value = "numbers,arith,text,table,receipt")]
    tasks: String,
    /// Fraction of records that are text-only (no image), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    text_only_ratio: f64,
    /// Folder of extra .ttf/.otf fonts (besides the built-in Ubuntu-Light and Hack).
    #[arg(long, default_value = DEFAULT_FONTS_DIR)]
    fonts_dir: PathBuf,
}

pub fn run(a: SynthArgs) -> Result<ExitCode> {
    let tasks = Task::parse_list(&a.tasks).context("--tasks")?;
    let fonts = FontSet::load(&a.fonts_dir)?;
    if let Some(w) = fonts.warning() {
        eprintln!("warning: {w}");
    }
    let cfg = SynthConfig {
        seed: a.seed,
        tasks,
        text_only_ratio: a.text_only_ratio,
        fonts,
    };
    cfg.validate()?;
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(a.count);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} records ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let stats = write_dataset_with_progress(&cfg, &a.out, a.count, |done| bar.set_position(done))?;
    bar.finish_and_clear();
    let fmt = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "wrote {} records ({} images, {} text-only) to {}; tasks: {}; buckets: {}; {} fonts",
        stats.records,
        stats.images,
        stats.text_only,
        a.out.join("data.jsonl").display(),
        fmt(&stats.by_task),
        fmt(&stats.by_bucket),
        cfg.fonts.len()
    );
    Ok(ExitCode::SUCCESS)
}
