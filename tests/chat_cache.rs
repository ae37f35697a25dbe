//! Multi-turn chat reuses the KV cache of earlier turns: the second answer must equal what a
//! single prefill of the whole conversation produces, and generation must honour its limits.

use monovlm_e2e::fixture;
use runtime::generate::greedy_continuation;
use runtime::image::{pilimage, DecodeLimits};
use runtime::{Chat, FinishReason, GenerationOptions, LoadOptions, Model, PromptFormat};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn greedy(max_tokens: usize) -> GenerationOptions {
    GenerationOptions {
        max_tokens,
        stop_at_eos: false,
        ..Default::default()
    }
}

#[test]
fn second_turn_equals_full_recompute() {
    let dir = fixture("fuyu-tiny");
    let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
    let bytes = std::fs::read(dir.join("images/wide.png")).unwrap();
    let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default()).unwrap();

    let mut chat = Chat::new(&model, PromptFormat::Chat);
    let a1 = chat
        .send(
            "What is this?\n",
            std::slice::from_ref(&img),
            &greedy(5),
            &mut |_| true,
        )
        .unwrap();
    let a2 = chat
        .send("Tell me more.\n", &[], &greedy(5), &mut |_| true)
        .unwrap();
    assert_eq!(a1.ids.len(), 5);
    assert_eq!(a2.ids.len(), 5);

    // Rebuild the same conversation and prefill it in one go.
    let prepared = model.prepare_image(&img).unwrap();
    let grid = prepared.slots;
    let t1 = model
        .build_turn(
            model.turn_parts(PromptFormat::Chat, true, true),
            "What is this?\n",
            &[grid],
        )
        .unwrap();
    let mut parts = model.spec.sequence.template.assistant_end.clone();
    parts.extend(
        model
            .turn_parts(PromptFormat::Chat, false, false)
            .iter()
            .cloned(),
    );
    let t2 = model.build_turn(&parts, "Tell me more.\n", &[]).unwrap();
    let mut seq = t1.clone();
    seq.ids.extend(&a1.ids);
    seq.ids.extend(&t2.ids);
    assert_eq!(seq.ids, chat.history()[..seq.ids.len()].to_vec());
    let embeds = model.embed_sequence(&seq, Some(&prepared.embeds)).unwrap();
    let mut cache = model.new_cache();
    let h = model.forward(&embeds, &mut cache).unwrap();
    let out = greedy_continuation(&model, &h, &mut cache, 5, true).unwrap();
    assert_eq!(out, a2.ids);
}

#[test]
fn limits_and_cancellation() {
    let dir = fixture("fuyu-tiny");
    let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
    let mut chat = Chat::new(&model, PromptFormat::Raw);
    let r = chat
        .send("The quick brown fox", &[], &greedy(3), &mut |_| true)
        .unwrap();
    assert_eq!((r.ids.len(), r.finish), (3, FinishReason::Length));

    let cancel = Arc::new(AtomicBool::new(true));
    let opts = GenerationOptions {
        cancel: Some(cancel),
        ..greedy(10)
    };
    let r = Chat::new(&model, PromptFormat::Raw)
        .send("Hello", &[], &opts, &mut |_| true)
        .unwrap();
    assert_eq!((r.ids.len(), r.finish), (0, FinishReason::Cancelled));

    // The streaming callback can stop generation too.
    let mut pieces = 0;
    let r = Chat::new(&model, PromptFormat::Raw)
        .send("Hello", &[], &greedy(10), &mut |_| {
            pieces += 1;
            false
        })
        .unwrap();
    assert_eq!(r.finish, FinishReason::Cancelled);
    assert_eq!(pieces, 1);
    assert!(r.ids.len() <= 2);
}

#[test]
fn prompt_over_context_is_an_error() {
    let dir = fixture("fuyu-tiny");
    let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
    let ctx = model.spec.decoder.max_position;
    let long = "fox ".repeat(ctx);
    let e = Chat::new(&model, PromptFormat::Raw)
        .send(&long, &[], &greedy(1), &mut |_| true)
        .unwrap_err();
    assert!(e.to_string().contains("context length"), "{e}");
}
