//! Conversations: build each turn, prefill only what the KV cache has not seen, decode with
//! streaming, stop tokens, token limits and cancellation.

pub mod sampler;

use crate::decoder::KvCache;
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::memory;
use crate::model::{Model, PromptFormat};
use crate::spec::Part;
use candle_core::{IndexOp, Tensor};
pub use sampler::{argmax, Sampler, SamplingOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct GenerationOptions {
    pub max_tokens: usize,
    pub sampling: SamplingOptions,
    /// Stop at the family's end-of-sequence tokens.
    pub stop_at_eos: bool,
    /// Apply the family's logit suppression (SOLO's added tokens).
    pub suppress: bool,
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            max_tokens: 256,
            sampling: SamplingOptions::default(),
            stop_at_eos: true,
            suppress: true,
            cancel: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub ids: Vec<u32>,
    /// New prompt positions prefilled for this turn (text and image tokens).
    pub prompt_tokens: usize,
    pub image_tokens: usize,
    pub finish: FinishReason,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
}

/// Greedy continuation of `n` tokens after a prefill whose normed hidden states are `hidden` (the
/// prompt is already in `cache`): argmax at each step, with the family's logit suppression when
/// `suppress`, no stop tokens. This is how the references produce their `greedy_ids`.
pub fn greedy_continuation(
    model: &Model,
    hidden: &Tensor,
    cache: &mut KvCache,
    n: usize,
    suppress: bool,
) -> Result<Vec<u32>> {
    let ranges = if suppress {
        model.spec.generation.suppress.clone()
    } else {
        Vec::new()
    };
    let mut sampler = Sampler::new(SamplingOptions::default());
    let last = hidden.i(hidden.dim(0)? - 1..)?;
    let mut logits: Vec<f32> = model.decoder.logits(&last)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(n);
    for step in 0..n {
        check_finite(&logits, step)?;
        let t = sampler.sample(&mut logits, &ranges, &[]);
        out.push(t);
        if step + 1 < n {
            let h = model.forward(&model.decoder.embed(&[t])?, cache)?;
            logits = model.decoder.logits(&h)?.flatten_all()?.to_vec1()?;
        }
    }
    Ok(out)
}

/// A conversation with one model: the KV cache and ids of everything said so far.
pub struct Chat<'m> {
    model: &'m Model,
    format: PromptFormat,
    cache: KvCache,
    history: Vec<u32>,
    turns: usize,
}

impl<'m> Chat<'m> {
    pub fn new(model: &'m Model, format: PromptFormat) -> Self {
        Chat {
            model,
            format,
            cache: model.new_cache(),
            history: Vec::new(),
            turns: 0,
        }
    }

    /// Positions in the cache (for context accounting).
    pub fn len(&self) -> usize {
        self.cache.len
    }

    pub fn is_empty(&self) -> bool {
        self.cache.len == 0
    }

    /// Every token id of the conversation so far (prompts, image placeholders and answers).
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Sends a user message; `on_text` receives streamed text pieces and returns `false` to stop.
    pub fn send(
        &mut self,
        prompt: &str,
        images: &[RgbImage],
        opts: &GenerationOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Reply> {
        let t0 = Instant::now();
        let (seq, hidden) = self.prefill_turn(prompt, images, "")?;
        let model = self.model;
        let context = model.spec.decoder.max_position;
        let last = hidden.i(hidden.dim(0)? - 1..)?;
        let mut logits: Vec<f32> = model.decoder.logits(&last)?.flatten_all()?.to_vec1()?;
        let prefill_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let suppress = if opts.suppress {
            model.spec.generation.suppress.clone()
        } else {
            vec![]
        };
        let mut sampler = Sampler::new(opts.sampling.clone());
        let mut out_ids: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        loop {
            if opts
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                finish = FinishReason::Cancelled;
                break;
            }
            if out_ids.len() >= opts.max_tokens {
                break;
            }
            check_finite(&logits, out_ids.len())?;
            let tok = sampler.sample(&mut logits, &suppress, &self.history);
            if opts.stop_at_eos && model.spec.generation.stop_ids.contains(&tok) {
                finish = FinishReason::Stop;
                break;
            }
            out_ids.push(tok);
            self.history.push(tok);
            text = model.tokenizer.decode(&out_ids, true)?;
            // Hold back a trailing partial UTF-8 sequence until the next token completes it.
            if !text.ends_with('\u{FFFD}') && text.len() > emitted && text.is_char_boundary(emitted)
            {
                let keep_going = on_text(&text[emitted..]);
                emitted = text.len();
                if !keep_going {
                    finish = FinishReason::Cancelled;
                    break;
                }
            }
            if out_ids.len() >= opts.max_tokens {
                break;
            }
            if self.cache.len + 1 >= context {
                break;
            }
            let e = model.decoder.embed(&[tok])?;
            let h = model.forward(&e, &mut self.cache)?;
            logits = model.decoder.logits(&h)?.flatten_all()?.to_vec1()?;
        }
        // The last sampled token is in `history` but not yet in the cache; feed it next turn.
        self.sync_cache_with_history()?;
        self.turns += 1;
        Ok(Reply {
            text,
            ids: out_ids,
            prompt_tokens: seq.ids.len(),
            image_tokens: seq.image_positions.len(),
            finish,
            prefill_seconds,
            decode_seconds: t1.elapsed().as_secs_f64(),
        })
    }

    /// Adds an earlier exchange (a user turn and the assistant's answer, given as text) to the
    /// conversation without generating, e.g. to resume a chat whose history a client sends back.
    /// The next [`Chat::send`] continues after it exactly as if the model had produced `answer`
    /// (as tokenized now). Returns the number of positions prefilled.
    pub fn replay(&mut self, prompt: &str, images: &[RgbImage], answer: &str) -> Result<usize> {
        let before = self.cache.len;
        self.prefill_turn(prompt, images, answer)?;
        self.turns += 1;
        Ok(self.cache.len - before)
    }

    /// Builds one user turn (template, prompt, images), optionally followed by a given answer,
    /// checks it against the context length and prefills it. Returns the turn's sequence and the
    /// hidden states of every prefilled position.
    fn prefill_turn(
        &mut self,
        prompt: &str,
        images: &[RgbImage],
        answer: &str,
    ) -> Result<(crate::sequence::Sequence, Tensor)> {
        let model = self.model;
        let prepared = images
            .iter()
            .map(|im| model.prepare_image(im))
            .collect::<Result<Vec<_>>>()?;
        let grids: Vec<_> = prepared.iter().map(|p| p.slots).collect();
        let mut parts: Vec<Part> = Vec::new();
        if self.turns > 0 && self.format == PromptFormat::Chat {
            parts.extend(model.spec.sequence.template.assistant_end.iter().cloned());
        }
        parts.extend(
            model
                .turn_parts(self.format, self.turns == 0, !images.is_empty())
                .iter()
                .cloned(),
        );
        let seq = model.build_turn(&parts, prompt, &grids)?;
        let answer_ids = if answer.is_empty() {
            Vec::new()
        } else {
            model.tokenizer.encode(answer, false)?
        };
        let needed = self.cache.len + seq.ids.len() + answer_ids.len();
        let context = model.spec.decoder.max_position;
        if needed + 1 > context {
            return Err(Error::ContextOverflow {
                tokens: needed,
                context,
            });
        }
        let new_tokens = seq.ids.len() + answer_ids.len();
        let estimate = memory::turn_estimate(
            &model.spec.decoder,
            model.spec.frontend.pre_decoder(),
            model.decoder.dtype(),
            self.cache.len,
            new_tokens,
        );
        memory::check_turn(&estimate, new_tokens, memory::budget(&model.compute)?)?;
        let img = if prepared.is_empty() {
            None
        } else {
            let rows: Vec<&Tensor> = prepared.iter().map(|p| &p.embeds).collect();
            Some(Tensor::cat(&rows, 0)?)
        };
        let mut embeds = model.embed_sequence(&seq, img.as_ref())?;
        if !answer_ids.is_empty() {
            embeds = Tensor::cat(&[&embeds, &model.decoder.embed(&answer_ids)?], 0)?;
        }
        let hidden = model.forward_with_images(&embeds, &seq.image_positions, &mut self.cache)?;
        self.history.extend(&seq.ids);
        self.history.extend(&answer_ids);
        Ok((seq, hidden))
    }

    /// Runs any history tokens the cache has not seen (the final answer token) through the decoder.
    fn sync_cache_with_history(&mut self) -> Result<()> {
        if self.history.len() > self.cache.len {
            let pending = self.history[self.cache.len..].to_vec();
            let e = self.model.decoder.embed(&pending)?;
            self.model.forward(&e, &mut self.cache)?;
        }
        Ok(())
    }
}

/// NaN/∞ logits would make every sampler return token 0 forever: a corrupt model must say so.
fn check_finite(logits: &[f32], step: usize) -> Result<()> {
    if logits.iter().all(|l| l.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFiniteLogits { step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadOptions;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        std::env::var("MONOVLM_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
            })
    }

    fn greedy(max_tokens: usize) -> GenerationOptions {
        GenerationOptions {
            max_tokens,
            stop_at_eos: false,
            ..Default::default()
        }
    }

    /// A replayed exchange followed by a new turn equals one prefill of the same tokens.
    #[test]
    fn replayed_exchange_then_send_equals_full_recompute() {
        let dir = fixtures().join("fuyu-tiny");
        let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
        let bytes = std::fs::read(dir.join("images/wide.png")).unwrap();
        let img = crate::image::pilimage::decode_rgb(&bytes, &Default::default()).unwrap();
        let answer = "It is a red bus.";

        let mut chat = Chat::new(&model, PromptFormat::Chat);
        let n = chat
            .replay("What is this?\n", std::slice::from_ref(&img), answer)
            .unwrap();
        assert_eq!(n, chat.len());
        let reply = chat
            .send("Tell me more.\n", &[], &greedy(4), &mut |_| true)
            .unwrap();

        let prepared = model.prepare_image(&img).unwrap();
        let grid = prepared.slots;
        let mut seq = model
            .build_turn(
                model.turn_parts(PromptFormat::Chat, true, true),
                "What is this?\n",
                &[grid],
            )
            .unwrap();
        seq.ids
            .extend(model.tokenizer.encode(answer, false).unwrap());
        let mut parts = model.spec.sequence.template.assistant_end.clone();
        parts.extend(
            model
                .turn_parts(PromptFormat::Chat, false, false)
                .iter()
                .cloned(),
        );
        seq.ids.extend(
            model
                .build_turn(&parts, "Tell me more.\n", &[])
                .unwrap()
                .ids,
        );
        assert_eq!(seq.ids, chat.history()[..seq.ids.len()]);

        let embeds = model.embed_sequence(&seq, Some(&prepared.embeds)).unwrap();
        let mut cache = model.new_cache();
        let h = model.forward(&embeds, &mut cache).unwrap();
        let out = greedy_continuation(&model, &h, &mut cache, 4, true).unwrap();
        assert_eq!(reply.ids, out);
    }

    #[test]
    fn replay_over_the_context_length_is_an_error() {
        let dir = fixtures().join("fuyu-tiny");
        let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
        let mut chat = Chat::new(&model, PromptFormat::Chat);
        let long = "word ".repeat(model.spec.decoder.max_position);
        let err = chat.replay("hi", &[], &long).unwrap_err();
        assert!(matches!(err, Error::ContextOverflow { .. }), "{err}");
        assert!(chat.is_empty());
    }
}
