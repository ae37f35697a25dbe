//! A model folder from hostile bytes: `config.json` and `model.safetensors` (input split at the
//! first `SEP`; without it the input is the config and the weights are an empty safetensors).
//! Runs `HfFolder::open` (safetensors header), family detection, the family's config → spec
//! build with a real fixture tokenizer, and the full `Model::from_folder` (weights vs spec).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use runtime::checkpoint::HfFolder;
use runtime::sequence::Tokenizer;
use runtime::{families, LoadOptions, Model};
use std::sync::OnceLock;

const SEP: &[u8] = b"\n--monovlm-safetensors--\n";
/// `{}` header: 8-byte length then the JSON.
const EMPTY_SAFETENSORS: &[u8] = b"\x02\x00\x00\x00\x00\x00\x00\x00{}";

static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
static TOKENIZER_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (config, weights) = match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => (&data[..i], &data[i + SEP.len()..]),
        None => (data, EMPTY_SAFETENSORS),
    };
    let dir = common::scratch("st");
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let tok_dir =
        TOKENIZER_DIR.get_or_init(|| common::fixture_models().into_iter().next().unwrap());
    let tokenizer =
        TOKENIZER.get_or_init(|| Tokenizer::from_dir(tok_dir).expect("fixture tokenizer"));
    let Ok(folder) = HfFolder::open(&dir) else {
        return;
    };
    let Ok(family) = families::detect(&folder) else {
        return;
    };
    if (family.build)(&folder, tokenizer).is_err() {
        return;
    }
    // `Tokenizer` is not `Clone`: a fresh one for the model (tiny, read from the fixture).
    let fresh = Tokenizer::from_dir(tok_dir).expect("fixture tokenizer");
    let _ = Model::from_folder(&folder, fresh, &LoadOptions::default(), None);
});
