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
    /// Write only the text decoder, as a llama.cpp `llama`/`qwen2` model (SOLO, EVE v1, EVE v2's
    /// text branch): llama.cpp then runs the very same weights, for side-by-side benchmarks.
    #[arg(long)]
    pub text_only: bool,
}

pub fn run(a: QuantizeArgs) -> Result<ExitCode> {
    let target: QuantType = a.ty.parse()?;
    if a.text_only {
        let s = quantize::text_only::export_text_only(&a.folder, &a.output, target, !a.quiet)
            .with_context(|| format!("converting {}", a.folder.display()))?;
        if !a.quiet {
            print!("{}", policy_table(&s.policy));
        }
        println!(
            "wrote {} (text decoder of the {} model as llama.cpp `{}`, {}, {} tensors, {:.2} MiB)",
            a.output.display(),
            s.family,
            s.arch,
            target.name(),
            s.policy.len(),
            s.bytes as f64 / (1024.0 * 1024.0)
        );
        return Ok(ExitCode::SUCCESS);
    }
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
        "wrote {} ({} family, {}, {} tensors of which {} under llama.cpp names, {:.2} MiB; vocabulary as tokenizer.ggml.*: {}; embedded: {})",
        a.output.display(),
        summary.family,
        target.name(),
        summary.policy.len(),
        summary.renamed,
        summary.bytes as f64 / (1024.0 * 1024.0),
        match &summary.llama_tokenizer_skipped {
            None => "yes".to_string(),
            Some(why) => format!("no ({why})"),
        },
        summary.embedded.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
