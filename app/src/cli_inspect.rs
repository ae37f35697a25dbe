//! `inspect`: what a model is and how it would see an image.

use crate::cli_ask::{load_image, load_model, ModelArgs};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Show how this image would be resized and tokenized.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

pub fn run(a: InspectArgs) -> Result<ExitCode> {
    let model = load_model(&a.model)?;
    let s = &model.spec;
    let d = &s.decoder;
    println!("path:            {}", model.path.display());
    println!("family:          {}", s.family);
    println!(
        "parameters:      {} ({:.2} M)",
        model.stats.parameters,
        model.stats.parameters as f64 / 1e6
    );
    let dtypes: Vec<String> = model
        .stats
        .dtypes
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect();
    println!(
        "tensors:         {} ({})",
        model.stats.tensors,
        dtypes.join(", ")
    );
    println!("context length:  {}", d.max_position);
    println!(
        "decoder:         {} layers, hidden {}, heads {}/{} (kv), head_dim {}, ffn {}, vocab {}",
        d.layers, d.hidden, d.heads, d.kv_heads, d.head_dim, d.intermediate, d.vocab
    );
    println!(
        "                 norm {:?} eps {:e}, mlp {:?}, rope θ {} on {}/{} dims{}",
        d.norm,
        d.norm_eps,
        d.mlp,
        d.rope_theta,
        d.rotary_dim,
        d.head_dim,
        d.sliding_window
            .map(|w| format!(", sliding window {w}"))
            .unwrap_or_default()
    );
    println!(
        "                 qkv {:?}{}{}",
        d.qkv,
        if d.qkv_bias { " with bias" } else { "" },
        d.names
            .experts
            .as_ref()
            .map(|e| format!(", modality experts at image rows ({})", e.describe()))
            .unwrap_or_default()
    );
    println!("front end:       {}", s.frontend.describe());
    let p = &s.preprocess;
    println!(
        "image:           {:?}, {:?} filter, patch {} ({:?})",
        p.resize, p.filter, p.patch, p.order
    );
    if let Some(path) = &a.image {
        let img = load_image(path)?;
        let plan = model.plan_image(img.width, img.height)?;
        println!(
            "image file:      {} ({}x{})",
            path.display(),
            img.width,
            img.height
        );
        println!(
            "resized:         {}x{} (w×h)",
            plan.resized_w, plan.resized_h
        );
        if plan.tiles > 1 || plan.tile_grid != (1, 1) {
            println!(
                "tiles:           {}×{} grid{} = {} tiles",
                plan.tile_grid.0,
                plan.tile_grid.1,
                if plan.thumbnail { " + thumbnail" } else { "" },
                plan.tiles
            );
        }
        println!(
            "grid:            {} rows × {} cols = {} patches{}",
            plan.rows,
            plan.cols,
            plan.rows * plan.cols,
            if plan.tiles > 1 { " per tile" } else { "" }
        );
        println!("image tokens:    {}", model.image_token_count(&plan));
    }
    Ok(ExitCode::SUCCESS)
}
