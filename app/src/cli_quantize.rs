//! `quantize`: HF checkpoint folder → one self-contained GGUF (weights, configs, tokenizer).

use anyhow::{Context, Result};
use clap::Args;
use quantize::{policy_table, quantize, Options, QuantType};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer files).
    pub folder: PathBuf,
    /// Output file (written to a temporary file beside it, renamed when complete).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Type of the decoder's weight matrices: f32, f16, bf16, q8_0, q6_k, q5_k, q4_k, q4_0.
    #[arg(long = "type", default_value = "q8_0")]
    pub ty: String,
    /// Do not print the per-tensor policy table.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: QuantizeArgs) -> Result<ExitCode> {
    let target: QuantType = a.ty.parse()?;
    let opts = Options {
        target,
        progress: !a.quiet,
    };
    let summary = quantize(&a.folder, &a.output, &opts)
        .with_context(|| format!("converting {}", a.folder.display()))?;
    if !a.quiet {
        print!("{}", policy_table(&summary.policy));
    }
    println!(
        "wrote {} ({} family, {}, {} tensors, {:.2} MiB; embedded: {})",
        a.output.display(),
        summary.family,
        target.name(),
        summary.policy.len(),
        summary.bytes as f64 / (1024.0 * 1024.0),
        summary.embedded.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
