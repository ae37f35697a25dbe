//! A record → the token sequence the runtime would see at inference (same template, same image
//! layout), with next-token targets on the answer tokens only.

use crate::data::Record;
use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor};
use runtime::image::{PatchGrid, RgbImage};
use runtime::sequence::Sequence;
use runtime::spec::Part;
use runtime::{Model, PromptFormat};

pub struct Encoded {
    pub grid: Option<PatchGrid>,
    pub seq: Sequence,
    /// `(position, label)`: the logits at `position` should predict `label`.
    pub targets: Vec<(usize, u32)>,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.seq.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.ids.is_empty()
    }
}

/// The ids that close an answer: the template's assistant end, else the first stop id.
pub fn answer_end_ids(model: &Model) -> Result<Vec<u32>> {
    let end = &model.spec.sequence.template.assistant_end;
    if !end.is_empty() {
        return Ok(model.build_turn(end, "", &[])?.ids);
    }
    match model.spec.generation.stop_ids.first() {
        Some(&id) => Ok(vec![id]),
        None => Err(TrainError::Config(format!(
            "the {} model has neither an assistant-end template nor a stop token",
            model.spec.family
        ))),
    }
}

/// Encodes `rec` (its image already decoded, if any). Conversations follow [`runtime::Chat`]'s
/// layout exactly: the first turn's template, then for each later turn the assistant end and the
/// follow-up template.
pub fn encode(model: &Model, rec: &Record, image: Option<&RgbImage>) -> Result<Encoded> {
    let grid = match image {
        Some(img) => Some(model.preprocess(img)?),
        None => None,
    };
    let slots: Vec<_> = grid.iter().map(|g| model.slots_of(g)).collect();
    let end_ids = answer_end_ids(model)?;
    let template_has_end = !model.spec.sequence.template.assistant_end.is_empty();
    let mut seq = Sequence {
        ids: Vec::new(),
        image_positions: Vec::new(),
        image_spans: Vec::new(),
    };
    let mut targets = Vec::new();
    for (k, (user, answer)) in rec.turns.iter().enumerate() {
        // A later turn's leading assistant end is already in place: the previous answer's
        // targets included it.
        let mut parts: Vec<Part> = Vec::new();
        parts.extend(
            model
                .turn_parts(PromptFormat::Chat, k == 0, k == 0 && grid.is_some())
                .iter()
                .cloned(),
        );
        let turn = model.build_turn(&parts, user, if k == 0 { &slots } else { &[] })?;
        let offset = seq.ids.len();
        seq.ids.extend(&turn.ids);
        seq.image_positions
            .extend(turn.image_positions.iter().map(|p| p + offset));
        seq.image_spans.extend(
            turn.image_spans
                .iter()
                .map(|r| r.start + offset..r.end + offset),
        );
        let mut answer_ids = model.tokenizer.encode(answer, false)?;
        let last = k + 1 == rec.turns.len();
        if template_has_end || last {
            answer_ids.extend(&end_ids);
        }
        for id in answer_ids {
            targets.push((seq.ids.len() - 1, id));
            seq.ids.push(id);
        }
    }
    let context = model.spec.decoder.max_position;
    if seq.ids.len() > context {
        return Err(TrainError::Runtime(runtime::Error::ContextOverflow {
            tokens: seq.ids.len(),
            context,
        }));
    }
    Ok(Encoded { grid, seq, targets })
}

/// Summed cross-entropy (nats) of the targets of `enc` under `model`, and their count. Built
/// from differentiable ops: the front end and decoder run in training mode.
pub fn loss_sum(model: &Model, enc: &Encoded) -> Result<(Tensor, usize)> {
    let device = model.device();
    let img = match &enc.grid {
        Some(g) => Some(model.frontend.forward(g, device)?),
        None => None,
    };
    let embeds = model.embed_sequence(&enc.seq, img.as_ref())?;
    let hidden = model
        .decoder
        .forward_train(&embeds, model.expert_positions(&enc.seq))?;
    let pos: Vec<u32> = enc.targets.iter().map(|&(p, _)| p as u32).collect();
    let labels: Vec<u32> = enc.targets.iter().map(|&(_, l)| l).collect();
    let n = pos.len();
    let rows = hidden.index_select(&Tensor::new(pos.as_slice(), device)?, 0)?;
    let logits = model.decoder.logits(&rows)?.to_dtype(DType::F32)?;
    let logp = candle_nn::ops::log_softmax(&logits, 1)?;
    let labels = Tensor::new(labels.as_slice(), device)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    Ok(((picked.sum_all()? * -1.0)?, n))
}
