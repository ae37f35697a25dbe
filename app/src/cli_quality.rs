//! `quality`: what quantization cost — KL divergence, top-1 agreement and max |Δlogit| of a
//! converted model against its reference, on the same images and prompts.

use anyhow::{bail, Context, Result};
use clap::Args;
use quantize::quality::{compare, Case};
use runtime::{LoadOptions, Model};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct QualityArgs {
    /// The reference: an HF folder (computed in f32).
    pub reference: PathBuf,
    /// The candidate: a .gguf from `monovlm quantize` (or another folder).
    pub candidate: PathBuf,
    /// Images to ask about (default: the `images/` folder beside the reference, as in the
    /// golden fixtures).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Prompts, each asked about each image.
    #[arg(long = "prompt", default_value = "Describe the image in detail.")]
    pub prompts: Vec<String>,
    /// Greedy tokens of the reference to compare along, after the prompt.
    #[arg(long, default_value_t = 16)]
    pub tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: QualityArgs) -> Result<ExitCode> {
    let opts = LoadOptions::default();
    let reference = Model::load(&a.reference, &opts)
        .with_context(|| format!("loading {}", a.reference.display()))?;
    let candidate = Model::load(&a.candidate, &opts)
        .with_context(|| format!("loading {}", a.candidate.display()))?;
    let mut images = a.images.clone();
    if images.is_empty() {
        let dir = a.reference.join("../images");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| {
                        ["png", "jpg", "jpeg", "webp"].contains(&x.to_str().unwrap_or(""))
                    })
                })
                .collect();
            found.sort();
            images = found;
        }
    }
    if images.is_empty() {
        bail!("no images: pass --image FILE (or put an images/ folder beside the reference)");
    }
    let mut cases = Vec::new();
    for img in &images {
        let decoded = crate::cli_ask::load_image(img)?;
        for p in &a.prompts {
            cases.push(Case {
                name: format!(
                    "{} · {p}",
                    img.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ),
                image: Some(decoded.clone()),
                prompt: p.clone(),
            });
        }
    }
    let q = compare(&reference, &candidate, &cases, a.tokens).context("comparing")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&q)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("| case | positions | mean KL (nats) | max KL | top-1 agree | max abs Δlogit |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &q.cases {
        println!(
            "| {} | {} | {:.2e} | {:.2e} | {:.1} % | {:.3} |",
            c.name,
            c.positions,
            c.mean_kl,
            c.max_kl,
            100.0 * c.top1_agree,
            c.max_abs_dlogit
        );
    }
    println!(
        "| **all** | {} | {:.2e} | {:.2e} | {:.1} % | {:.3} |",
        q.positions,
        q.mean_kl,
        q.max_kl,
        100.0 * q.top1_agree,
        q.max_abs_dlogit
    );
    Ok(ExitCode::SUCCESS)
}
