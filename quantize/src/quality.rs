//! What quantization cost, measured: the candidate's next-token distributions against the
//! reference's on the same inputs. For each case the reference prefills the prompt (image
//! included) and greedily continues; the candidate is fed exactly the same tokens (teacher
//! forcing), and every position from the last prompt token on is compared.

use candle_core::{DType, Tensor};
use runtime::image::RgbImage;
use runtime::{Model, PromptFormat};
use serde::Serialize;

/// One question about one (optional) image.
pub struct Case {
    pub name: String,
    pub image: Option<RgbImage>,
    pub prompt: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseQuality {
    pub name: String,
    pub positions: usize,
    pub mean_kl: f64,
    pub max_kl: f64,
    pub top1_agree: f64,
    pub max_abs_dlogit: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quality {
    pub positions: usize,
    /// Mean KL(P_reference ‖ P_candidate) in nats per position.
    pub mean_kl: f64,
    pub max_kl: f64,
    /// Fraction of positions where both models' argmax agree.
    pub top1_agree: f64,
    pub max_abs_dlogit: f64,
    pub cases: Vec<CaseQuality>,
}

/// The prompt of `case` prefilled: hidden states and the KV cache.
fn prefill(model: &Model, case: &Case) -> runtime::Result<(Tensor, runtime::decoder::KvCache)> {
    let (seq, embeds) = prompt_embeddings(model, case)?;
    let mut cache = model.new_cache();
    let hidden = model.forward_with_images(&embeds, &seq.image_positions, &mut cache)?;
    Ok((hidden, cache))
}

fn prompt_embeddings(
    model: &Model,
    case: &Case,
) -> runtime::Result<(runtime::sequence::Sequence, Tensor)> {
    let images: Vec<&RgbImage> = case.image.iter().collect();
    let prepared = images
        .iter()
        .map(|im| model.prepare_image(im))
        .collect::<runtime::Result<Vec<_>>>()?;
    let slots: Vec<_> = prepared.iter().map(|p| p.slots).collect();
    let parts = model.turn_parts(PromptFormat::Chat, true, !slots.is_empty());
    let seq = model.build_turn(parts, &case.prompt, &slots)?;
    let img = if prepared.is_empty() {
        None
    } else {
        let rows: Vec<&Tensor> = prepared.iter().map(|p| &p.embeds).collect();
        Some(Tensor::cat(&rows, 0)?)
    };
    let embeds = model.embed_sequence(&seq, img.as_ref())?;
    Ok((seq, embeds))
}

/// `[T, V]` logits of `model` for the sequence of `case` followed by `continuation`, from the
/// last prompt position on (T = continuation.len() + 1).
fn logits_along(model: &Model, case: &Case, continuation: &[u32]) -> runtime::Result<Tensor> {
    let (seq, mut embeds) = prompt_embeddings(model, case)?;
    if !continuation.is_empty() {
        embeds = Tensor::cat(&[&embeds, &model.decoder.embed(continuation)?], 0)?;
    }
    let mut cache = model.new_cache();
    let hidden = model.forward_with_images(&embeds, &seq.image_positions, &mut cache)?;
    let first = seq.ids.len() - 1;
    let rows = hidden.narrow(0, first, continuation.len() + 1)?;
    Ok(model.decoder.logits(&rows)?.to_dtype(DType::F32)?)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = row
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.iter().map(|&x| x as f64 - lse).collect()
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

/// Compares `candidate` with `reference` over `cases`, each continued for `tokens` greedy tokens.
pub fn compare(
    reference: &Model,
    candidate: &Model,
    cases: &[Case],
    tokens: usize,
) -> runtime::Result<Quality> {
    if reference.spec.decoder.vocab != candidate.spec.decoder.vocab {
        return Err(runtime::Error::InvalidArgument(format!(
            "vocabularies differ: {} vs {} tokens",
            reference.spec.decoder.vocab, candidate.spec.decoder.vocab
        )));
    }
    let mut q = Quality::default();
    let (mut kl_sum, mut agree) = (0f64, 0usize);
    for case in cases {
        // The reference's own greedy continuation (with its KV cache), then both models along it.
        let (hidden, mut cache) = prefill(reference, case)?;
        let cont = if tokens > 0 {
            runtime::generate::greedy_continuation(reference, &hidden, &mut cache, tokens, true)?
        } else {
            Vec::new()
        };
        let lr: Vec<Vec<f32>> = logits_along(reference, case, &cont)?.to_vec2()?;
        let lc: Vec<Vec<f32>> = logits_along(candidate, case, &cont)?.to_vec2()?;
        let mut c = CaseQuality {
            name: case.name.clone(),
            positions: lr.len(),
            ..Default::default()
        };
        let mut case_agree = 0;
        for (a, b) in lr.iter().zip(&lc) {
            let (pa, pb) = (log_softmax(a), log_softmax(b));
            let kl: f64 = pa
                .iter()
                .zip(&pb)
                .map(|(x, y)| x.exp() * (x - y))
                .sum::<f64>()
                .max(0.0);
            c.mean_kl += kl;
            c.max_kl = c.max_kl.max(kl);
            case_agree += usize::from(argmax(a) == argmax(b));
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs() as f64)
                .fold(0f64, f64::max);
            c.max_abs_dlogit = c.max_abs_dlogit.max(d);
        }
        kl_sum += c.mean_kl;
        agree += case_agree;
        q.positions += c.positions;
        c.mean_kl /= c.positions.max(1) as f64;
        c.top1_agree = case_agree as f64 / c.positions.max(1) as f64;
        q.max_kl = q.max_kl.max(c.max_kl);
        q.max_abs_dlogit = q.max_abs_dlogit.max(c.max_abs_dlogit);
        q.cases.push(c);
    }
    q.mean_kl = kl_sum / q.positions.max(1) as f64;
    q.top1_agree = agree as f64 / q.positions.max(1) as f64;
    Ok(q)
}
