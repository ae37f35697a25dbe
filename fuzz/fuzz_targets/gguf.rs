//! GGUF header parsing over arbitrary bytes: the same `parse` that `GgufFile::open` runs on the
//! mapped file, then the full open path (a temp file) for the accessors that read tensor data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime::checkpoint::gguf::{validate, GgufFile};

fuzz_target!(|data: &[u8]| {
    if validate(data).is_err() {
        return;
    }
    // A header that validates: open it for real and walk the accessors.
    let path = std::env::temp_dir().join(format!("monovlm-fuzz-gguf-{}.gguf", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(file) = GgufFile::open(&path) {
        let _ = file.meta_str("general.architecture");
        let _ = file.embedded_json("config.json");
        let _ = file.embedded_file("tokenizer.json");
        let _ = runtime::checkpoint::HfFolder::open_gguf(&path);
        let _ = runtime::sequence::Tokenizer::from_gguf(&file);
    }
});
