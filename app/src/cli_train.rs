//! `train` and `merge-lora`: fine-tune or train from scratch; fold a LoRA adapter into weights.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use trainer::{Method, TrainConfig};

#[derive(Args)]
pub struct TrainArgs {
    /// HF checkpoint folder, or a config.json (tokenizer files beside it) for a fresh model.
    #[arg(long, short)]
    pub model: Option<PathBuf>,
    /// Training conversations (LLaVA-style JSONL).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Held-out conversations for eval loss and greedy exact match.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Extra text-only conversations (JSONL) mixed in at --text-ratio.
    #[arg(long)]
    pub text_data: Option<PathBuf>,
    /// Probability that a sample is text-only (from --text-data or the text-only records of --data).
    #[arg(long)]
    pub text_ratio: Option<f64>,
    /// full, lora or frontend (image front end only, decoder frozen).
    #[arg(long)]
    pub method: Option<Method>,
    /// LoRA rank.
    #[arg(long)]
    pub rank: Option<usize>,
    /// LoRA alpha (scale = alpha / rank).
    #[arg(long)]
    pub alpha: Option<f64>,
    #[arg(long)]
    pub lora_dropout: Option<f64>,
    /// LoRA targets: q,k,v,o,gate,up,down (or module-name suffixes).
    #[arg(long, value_delimiter = ',')]
    pub targets: Option<Vec<String>>,
    #[arg(long)]
    pub steps: Option<usize>,
    /// Peak learning rate (linear warmup, cosine decay).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub grad_accum: Option<usize>,
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Max global gradient norm (0 = no clipping).
    #[arg(long)]
    pub clip: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub eval_every: Option<usize>,
    #[arg(long)]
    pub eval_samples: Option<usize>,
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Forward dtype: f32 or bf16 (weights and optimizer stay f32).
    #[arg(long)]
    pub dtype: Option<String>,
    /// A train.toml with any of these settings (command-line flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder: metrics.csv, curves.png, summary.json, model/ or adapter/, checkpoint/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from OUT/checkpoint exactly where it stopped.
    #[arg(long)]
    pub resume: bool,
    /// Run several methods on the same data and seed and write a comparison report, e.g. lora,full.
    #[arg(long, value_delimiter = ',')]
    pub compare: Option<Vec<Method>>,
}

fn config_of(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match &a.config {
        Some(p) => TrainConfig::from_toml(p)?,
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = &a.$f { c.$f = v.clone(); } )* };
    }
    set!(
        model,
        data,
        method,
        rank,
        alpha,
        lora_dropout,
        targets,
        steps,
        lr,
        batch,
        grad_accum,
        warmup,
        weight_decay,
        clip,
        seed,
        eval_every,
        eval_samples,
        checkpoint_every,
        device,
        dtype,
        out
    );
    if a.eval.is_some() {
        c.eval = a.eval.clone();
    }
    if a.text_data.is_some() {
        c.text_data = a.text_data.clone();
    }
    if a.text_ratio.is_some() {
        c.text_ratio = a.text_ratio;
    }
    c.resume |= a.resume;
    c.progress = true;
    if c.model.as_os_str().is_empty() {
        anyhow::bail!("--model is required (an HF folder or a config.json)");
    }
    if c.data.as_os_str().is_empty() {
        anyhow::bail!("--data is required (LLaVA-style JSONL)");
    }
    Ok(c)
}

pub fn run(a: TrainArgs) -> Result<ExitCode> {
    let cfg = config_of(&a)?;
    // The trainer runs one sample per core; candle's own kernel threads on top of that only
    // contend (measured: 1.45 s/step with both, 0.74 s/step with whole samples per core).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    if let Some(methods) = &a.compare {
        let sums = trainer::compare::compare(&cfg, methods).context("comparison")?;
        for s in &sums {
            print_summary(s);
        }
        println!("report: {}", cfg.out.join("report.md").display());
        return Ok(ExitCode::SUCCESS);
    }
    let s = trainer::train(&cfg).context("training")?;
    print_summary(&s);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &trainer::Summary) {
    let eval = match &s.eval {
        Some(e) => format!(
            ", eval loss {:.4}, exact match {:.1} %",
            e.loss,
            100.0 * e.exact
        ),
        None => String::new(),
    };
    println!(
        "{}: {} steps, {} trainable of {} parameters, {:.3} s/step, final loss {:.4}{eval} → {}",
        s.method,
        s.steps,
        s.trainable_parameters,
        s.total_parameters,
        s.mean_step_seconds,
        s.final_loss,
        s.output.display()
    );
}

#[derive(Args)]
pub struct MergeArgs {
    /// Base HF checkpoint folder.
    #[arg(long, short)]
    pub model: PathBuf,
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub lora: PathBuf,
    /// Output HF folder.
    #[arg(long, short)]
    pub out: PathBuf,
}

pub fn merge(a: MergeArgs) -> Result<ExitCode> {
    let n = trainer::lora::merge_into_folder(&a.model, &a.lora, &a.out)
        .with_context(|| format!("merging {} into {}", a.lora.display(), a.model.display()))?;
    println!("merged {n} adapted weights → {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
