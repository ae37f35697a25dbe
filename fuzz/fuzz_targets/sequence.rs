//! Chat-template rendering and sequence building with every fixture model's real tokenizer:
//! hostile prompt text and image sizes → `plan_image` → `build_turn` → `embed_sequence`, then
//! decoding the ids back to text. Checks the invariants the decoder relies on (every image row
//! has a slot, slots are in range and in order, every id has an embedding row).
//!
//! Input: `[model][flags][images][w₀ h₀ (u16 LE) …][prompt bytes, lossy UTF-8]`.
#![no_main]

mod common;

use candle_core::{DType, Tensor};
use libfuzzer_sys::fuzz_target;
use runtime::{Model, PromptFormat};
use std::sync::OnceLock;

static MODELS: OnceLock<Vec<Model>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let models = MODELS.get_or_init(common::load_fixture_models);
    let [pick, flags, n_images, rest @ ..] = data else {
        return;
    };
    let model = &models[*pick as usize % models.len()];
    let format = if flags & 1 == 0 {
        PromptFormat::Chat
    } else {
        PromptFormat::Raw
    };
    let first_turn = flags & 2 == 0;
    // Up to 4 images, one more than most families allow, so the refusal path runs too.
    let n = (*n_images % 5) as usize;
    if rest.len() < 4 * n {
        return;
    }
    let (sizes, prompt) = rest.split_at(4 * n);
    let mut slots = Vec::new();
    for wh in sizes.chunks_exact(4) {
        let w = u16::from_le_bytes([wh[0], wh[1]]) as u32;
        let h = u16::from_le_bytes([wh[2], wh[3]]) as u32;
        // Zero-sized images are refused by the decoder before planning; planning may refuse
        // others (too small for a patch), which is an answer, not a bug.
        let Ok(plan) = model.plan_image(w.max(1), h.max(1)) else {
            return;
        };
        slots.push(model.image_slots(&plan));
    }
    let prompt = String::from_utf8_lossy(prompt);
    let parts = model.turn_parts(format, first_turn, !slots.is_empty());
    let Ok(seq) = model.build_turn(parts, &prompt, &slots) else {
        return;
    };

    let rows: usize = slots.iter().map(|s| s.rows_out()).sum();
    assert_eq!(seq.image_positions.len(), rows, "one slot per image row");
    assert!(
        seq.image_positions.windows(2).all(|w| w[0] < w[1]),
        "image slots in order"
    );
    assert!(seq.image_positions.iter().all(|&p| p < seq.ids.len()));
    assert_eq!(seq.image_spans.len(), slots.len());
    for span in &seq.image_spans {
        assert!(span.start <= span.end && span.end <= seq.ids.len());
    }

    // The ids go through the real embedding (a prompt whose tokens fall outside the decoder's
    // vocabulary must be an error here, not an out-of-bounds read or a panic).
    let hidden = model.spec.decoder.hidden;
    let Ok(image_rows) = Tensor::zeros((rows, hidden), DType::F32, model.device()) else {
        return;
    };
    let image_rows = (rows > 0).then_some(&image_rows);
    if let Ok(embeds) = model.embed_sequence(&seq, image_rows) {
        assert_eq!(embeds.dims(), &[seq.ids.len(), hidden]);
    }
    let _ = model.tokenizer.decode(&seq.ids, false);
    let _ = model.tokenizer.decode(&seq.ids, true);
});
