//! The native families through the public chat API: the first answer to a fixture case equals the
//! reference's greedy ids (own preprocessing, KV-cached decode), and a follow-up turn over the
//! cache equals one prefill of the whole conversation — which exercises expert routing at the
//! image rows of an earlier turn and the pre-decoder's own KV cache.

use monovlm_e2e::fixture;
use runtime::generate::greedy_continuation;
use runtime::image::{pilimage, DecodeLimits};
use runtime::{Chat, GenerationOptions, LoadOptions, Model, PromptFormat};

fn greedy(max_tokens: usize) -> GenerationOptions {
    GenerationOptions {
        max_tokens,
        stop_at_eos: false,
        ..Default::default()
    }
}

fn check_family(name: &str) {
    let dir = fixture(name);
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let case = &cases["cases"][0];
    let prompt = case["prompt"].as_str().unwrap();
    let want: Vec<u32> = case["greedy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
    let bytes = std::fs::read(dir.join(case["image"].as_str().unwrap())).unwrap();
    let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default()).unwrap();

    let mut chat = Chat::new(&model, PromptFormat::Chat);
    let a1 = chat
        .send(
            prompt,
            std::slice::from_ref(&img),
            &greedy(want.len()),
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(a1.ids, want, "{name}: first answer");
    let a2 = chat
        .send("Tell me more.", &[], &greedy(4), &mut |_| true)
        .unwrap();

    // The same conversation in one prefill.
    let prepared = model.prepare_image(&img).unwrap();
    let mut seq = model
        .build_turn(
            model.turn_parts(PromptFormat::Chat, true, true),
            prompt,
            &[prepared.slots],
        )
        .unwrap();
    seq.ids.extend(&a1.ids);
    let mut parts = model.spec.sequence.template.assistant_end.clone();
    parts.extend(
        model
            .turn_parts(PromptFormat::Chat, false, false)
            .iter()
            .cloned(),
    );
    seq.ids
        .extend(model.build_turn(&parts, "Tell me more.", &[]).unwrap().ids);
    assert_eq!(seq.ids, chat.history()[..seq.ids.len()], "{name}: history");
    let embeds = model.embed_sequence(&seq, Some(&prepared.embeds)).unwrap();
    let mut cache = model.new_cache();
    let h = model
        .forward_with_images(&embeds, &seq.image_positions, &mut cache)
        .unwrap();
    let out = greedy_continuation(&model, &h, &mut cache, 4, true).unwrap();
    assert_eq!(out, a2.ids, "{name}: second answer");
}

#[test]
fn eve2_chat() {
    check_family("eve2-tiny");
}

#[test]
fn eve1_chat() {
    check_family("eve1-tiny");
}

#[test]
fn hovle_chat() {
    check_family("hovle-tiny");
}

#[test]
fn monointernvl_chat() {
    check_family("monointernvl-tiny");
}

/// Hub EVE repos do not ship the processor folder: its numbers come from `mm_vision_tower`.
#[test]
fn eve2_without_processor_config_reads_the_tower_name() {
    let model = monovlm_e2e::copy_model("eve2-tiny");
    std::fs::remove_file(model.path().join("preprocessor_config.json")).unwrap();
    let reports = runtime::reference::check_fixture(
        &fixture("eve2-tiny"),
        Some(model.path()),
        &LoadOptions::default(),
    )
    .unwrap();
    for r in &reports {
        assert!(r.passed(), "{}", r.line());
    }
}
