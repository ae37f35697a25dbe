//! The side files of a model folder from hostile bytes: one of `tokenizer.json`,
//! `tokenizer.model`, `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`,
//! `preprocessor_config.json`, `generation_config.json` or `model.safetensors.index.json` is
//! replaced in a copy of a fixture model, which is then loaded (`Model::load`) and, if that
//! succeeds, asked to tokenize, build a turn with an image and decode.
//!
//! Input: `[model][file][file bytes …]`.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use runtime::{LoadOptions, Model, PromptFormat};
use std::path::PathBuf;
use std::sync::OnceLock;

const FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "generation_config.json",
    "model.safetensors.index.json",
];

/// Private copies of the fixture folders (the weights are linked, not copied).
static FOLDERS: OnceLock<Vec<PathBuf>> = OnceLock::new();

fn copy_folders() -> Vec<PathBuf> {
    let root = common::scratch("files");
    common::fixture_models()
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let dst = root.join(i.to_string());
            std::fs::create_dir_all(&dst).unwrap();
            for entry in std::fs::read_dir(src).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap();
                if path.extension().is_some_and(|e| e == "safetensors") {
                    std::os::unix::fs::symlink(&path, dst.join(name)).unwrap();
                } else {
                    std::fs::copy(&path, dst.join(name)).unwrap();
                }
            }
            dst
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let folders = FOLDERS.get_or_init(copy_folders);
    let [pick, which, bytes @ ..] = data else {
        return;
    };
    let dir = &folders[*pick as usize % folders.len()];
    let file = dir.join(FILES[*which as usize % FILES.len()]);
    let original = std::fs::read(&file).ok();
    std::fs::write(&file, bytes).unwrap();

    if let Ok(model) = Model::load(dir, &LoadOptions::default()) {
        let tok = &model.tokenizer;
        if let Ok(ids) = tok.encode("<s>What is 12 × 7?</s> <image> \u{fffd}", true) {
            let _ = tok.decode(&ids, false);
            let _ = tok.decode(&ids, true);
        }
        if let Ok(plan) = model.plan_image(64, 48) {
            let slots = [model.image_slots(&plan)];
            let parts = model.turn_parts(PromptFormat::Chat, true, true);
            let _ = model.build_turn(parts, "Which number is written here?", &slots);
        }
    }

    // Put the fixture back for the next input.
    match original {
        Some(o) => std::fs::write(&file, o).unwrap(),
        None => std::fs::remove_file(&file).unwrap(),
    }
});
