//! `bench`: prefill and decode throughput, time to first token and peak memory of one model, on a
//! synthetic prompt of a fixed token count (plus an optional image). A benchmark, not a test: run it
//! side by side with its anchor (see `bench/README.md`).

use crate::cli_ask::{load_image, load_model, ModelArgs};
use anyhow::{bail, Result};
use clap::Args;
use runtime::generate::argmax;
use runtime::sequence::Sequence;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prepend this image (its patches count as prompt tokens).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Text tokens in the prompt.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated after the prompt (greedy, no early stop).
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Peak resident set size of this process (Linux `VmHWM`), if the platform reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `n` token ids of ordinary text: the tokenization of a sentence, repeated and cut to length.
fn synthetic_ids(model: &runtime::Model, n: usize) -> Result<Vec<u32>> {
    let unit = model.tokenizer.encode(
        " The quick brown fox jumps over the lazy dog near the river bank.",
        false,
    )?;
    if unit.is_empty() {
        bail!("the tokenizer produced no tokens for the benchmark sentence");
    }
    Ok(unit.iter().cycle().take(n).copied().collect())
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    if let Some(t) = a.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        // candle's CPU kernels size their pool from this variable on first use.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let model = load_model(&a.model)?;
    let image = a.image.as_deref().map(load_image).transpose()?;

    let mut seq = Sequence::default();
    let mut image_embeds = None;
    if let Some(img) = &image {
        let prepared = model.prepare_image(img)?;
        // The family's raw format: its image tokens, then the synthetic text below.
        let parts = model
            .turn_parts(runtime::PromptFormat::Raw, true, true)
            .to_vec();
        seq = model.build_turn(&parts, "", std::slice::from_ref(&prepared.slots))?;
        image_embeds = Some(prepared.embeds);
    }
    seq.ids.extend(synthetic_ids(&model, a.prompt_tokens)?);
    let prompt_len = seq.ids.len();
    if prompt_len + a.gen_tokens > model.spec.decoder.max_position {
        bail!(
            "prompt ({prompt_len}) + generated ({}) tokens exceed the context length {}",
            a.gen_tokens,
            model.spec.decoder.max_position
        );
    }

    let t0 = Instant::now();
    let embeds = model.embed_sequence(&seq, image_embeds.as_ref())?;
    let mut cache = model.new_cache();
    let hidden = model.forward_with_images(&embeds, &seq.image_positions, &mut cache)?;
    let last = hidden.narrow(0, hidden.dim(0)? - 1, 1)?;
    let mut logits: Vec<f32> = model.decoder.logits(&last)?.flatten_all()?.to_vec1()?;
    let ttft = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    for _ in 0..a.gen_tokens {
        let tok = argmax(&logits);
        let h = model.forward(&model.decoder.embed(&[tok])?, &mut cache)?;
        logits = model.decoder.logits(&h)?.flatten_all()?.to_vec1()?;
    }
    let decode_s = t1.elapsed().as_secs_f64();

    let prefill_tps = prompt_len as f64 / ttft;
    let decode_tps = if a.gen_tokens > 0 {
        a.gen_tokens as f64 / decode_s
    } else {
        0.0
    };
    let rss = peak_rss_bytes();
    if a.json {
        let v = serde_json::json!({
            "model": model.path.display().to_string(),
            "family": model.spec.family,
            "dtype": a.model.dtype,
            "threads": threads,
            "prompt_tokens": prompt_len,
            "image_tokens": seq.image_positions.len(),
            "gen_tokens": a.gen_tokens,
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens_per_s": decode_tps,
            "ttft_s": ttft,
            "peak_rss_bytes": rss,
        });
        println!("{v}");
    } else {
        println!(
            "model            {} ({}, {})",
            model.path.display(),
            model.spec.family,
            a.model.dtype
        );
        println!("threads          {threads}");
        println!(
            "prompt           {prompt_len} tokens ({} image)",
            seq.image_positions.len()
        );
        println!("prefill          {prefill_tps:.1} tokens/s");
        println!("time to 1st tok  {ttft:.3} s");
        println!(
            "decode           {decode_tps:.2} tokens/s ({} tokens)",
            a.gen_tokens
        );
        match rss {
            Some(b) => println!("peak RSS         {:.1} MiB", b as f64 / (1 << 20) as f64),
            None => println!("peak RSS         unavailable on this platform"),
        }
    }
    #[cfg(feature = "vulkan")]
    if let runtime::device::ComputeDevice::Vulkan(ctx) = &model.compute {
        if let Some(profile) = ctx.profile() {
            eprintln!(
                "\nVulkan kernels, each run on its own ({}=1; the throughput above is not \
                 representative while it is on):\n{}",
                runtime::vulkan::profile::PROFILE_ENV,
                profile.table(20)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
