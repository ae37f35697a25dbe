//! The trainer's JSONL reader (`trainer::data::read_jsonl`) over a file of arbitrary bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("jsonl").join("data.jsonl");
    std::fs::write(&path, data).unwrap();
    if let Ok(records) = trainer::data::read_jsonl(&path) {
        for r in &records {
            let _ = r.has_image();
        }
    }
});
