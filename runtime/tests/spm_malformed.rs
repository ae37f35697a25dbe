//! Malformed model files: truncations, byte flips, hand-made garbage. The
//! loader must never panic (or over-allocate) and must report an error for
//! anything that is not a complete message.

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::{ModelProto, SentencePiece, SpmError};

fn model_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in [
        "unigram_rules",
        "bpe_nobytes",
        "unigram_bytes",
        "bpe_unused",
    ] {
        let p = common::data_dir().join(format!("{name}.model"));
        out.push((name.to_owned(), std::fs::read(p).unwrap()));
    }
    if let Some(fx) = common::fixtures_dir() {
        for f in ["solo-tiny", "hovle-tiny"] {
            let p = fx.join(f).join("model").join("tokenizer.model");
            if let Ok(b) = std::fs::read(&p) {
                out.push((f.to_owned(), b));
            }
        }
    }
    out
}

/// Byte offsets where a top-level field ends (a cut there leaves a
/// well-formed, shorter message).
fn top_level_boundaries(bytes: &[u8]) -> Vec<usize> {
    fn varint(b: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = vec![0];
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos);
        match key & 7 {
            0 => {
                varint(bytes, &mut pos);
            }
            2 => {
                let len = varint(bytes, &mut pos) as usize;
                pos += len;
            }
            5 => pos += 4,
            1 => pos += 8,
            wt => panic!("unexpected wire type {wt}"),
        }
        out.push(pos);
    }
    out
}

/// Exercises a loaded model; must not panic.
fn exercise(sp: &SentencePiece) {
    for text in [
        "",
        "Hello world",
        "  a\tb\n",
        "中文 😀 café",
        "<img>ab<|im_end|>",
        "ＡＢＣ ﬁ",
    ] {
        let ids = sp.encode(text);
        let _ = sp.decode(&ids);
        let _ = sp.encode_as_pieces(text);
    }
    let n = sp.vocab_size() as u32;
    let ids: Vec<u32> = (0..n.min(300)).chain([n, n + 5, u32::MAX]).collect();
    let _ = sp.decode(&ids);
    assert!(sp.try_decode(&[n]).is_err());
}

#[test]
fn truncated_models_error_and_never_panic() {
    for (name, bytes) in model_files() {
        let boundaries = top_level_boundaries(&bytes);
        let mut cuts: Vec<usize> = (0..bytes.len().min(400)).collect();
        cuts.extend((bytes.len().saturating_sub(400))..bytes.len());
        cuts.extend((0..bytes.len()).step_by(13));
        cuts.extend(boundaries.iter().copied().filter(|&b| b < bytes.len()));
        cuts.sort_unstable();
        cuts.dedup();
        let mut errors = 0;
        for cut in cuts {
            let parsed = ModelProto::parse(&bytes[..cut]);
            if !boundaries.contains(&cut) {
                assert!(
                    parsed.is_err(),
                    "{name}: cut at {cut} parsed although inside a field"
                );
                errors += 1;
                if let Err(SpmError::Protobuf { offset, .. }) = &parsed {
                    assert!(
                        *offset <= cut,
                        "{name}: error offset {offset} past the cut {cut}"
                    );
                } else {
                    panic!("{name}: cut at {cut}: expected a protobuf error, got {parsed:?}");
                }
            }
            if let Ok(sp) = SentencePiece::from_bytes(&bytes[..cut]) {
                exercise(&sp);
            }
        }
        assert!(errors > 100, "{name}: only {errors} truncations checked");
        // The complete file loads.
        let sp = SentencePiece::from_bytes(&bytes).unwrap();
        exercise(&sp);
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, bytes) in model_files() {
        let (mut ok, mut err) = (0, 0);
        for _ in 0..1500 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            if rng.below(4) == 0 {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            match SentencePiece::from_bytes(&b) {
                Ok(sp) => {
                    ok += 1;
                    exercise(&sp);
                }
                Err(e) => {
                    err += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        assert!(err > 0, "{name}: no flip was rejected ({ok} accepted)");
    }
}

#[test]
fn corrupted_charsmap_never_panics() {
    let bytes = std::fs::read(common::data_dir().join("unigram_rules.model")).unwrap();
    let proto = ModelProto::parse(&bytes).unwrap();
    assert!(!proto.normalizer_spec.precompiled_charsmap.is_empty());
    let mut rng = Rng(42);
    for round in 0..600 {
        let mut p = proto.clone();
        let cm = &mut p.normalizer_spec.precompiled_charsmap;
        match round % 3 {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(cm.len());
                    cm[i] = rng.next() as u8;
                }
            }
            1 => {
                let n = rng.below(cm.len());
                cm.truncate(n);
            }
            _ => {
                // Random trie size header.
                let v = (rng.next() as u32).to_le_bytes();
                cm[..4].copy_from_slice(&v);
            }
        }
        if let Ok(sp) = SentencePiece::from_proto(p) {
            exercise(&sp);
        }
    }
}

#[test]
fn hand_made_garbage_is_rejected() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("bad varint", [vec![0x0A], vec![0xFF; 11]].concat()),
        (
            "varint overflow",
            [vec![0x20], vec![0xFF; 9], vec![0x7F]].concat(),
        ),
        ("length past end", vec![0x0A, 0x7F, 0x01, 0x02]),
        (
            "absurd length",
            vec![0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ),
        (
            "huge length",
            vec![0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        ("field zero", vec![0x02, 0x00]),
        ("wire type 6", vec![0x0E]),
        ("wire type 7", vec![0x0F]),
        ("unterminated group", vec![0x0B, 0x08, 0x01]),
        ("deep groups", vec![0x0B; 200]),
        ("stray end group", vec![0x0C]),
        (
            "truncated fixed32 score",
            vec![0x0A, 0x05, 0x0A, 0x01, 0x61, 0x15, 0x00],
        ),
        ("piece not utf8", vec![0x0A, 0x03, 0x0A, 0x01, 0xFF]),
        (
            "random",
            (0..200u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (name, bytes) in cases {
        let res = SentencePiece::from_bytes(&bytes);
        assert!(res.is_err(), "{name}: accepted");
        let msg = res.unwrap_err().to_string();
        assert!(!msg.is_empty(), "{name}");
    }
    // An unknown field with every wire type, then a valid minimal model.
    let mut bytes = vec![
        0xF8, 0x07, 0x05, // field 127 varint
        0xF9, 0x07, 1, 2, 3, 4, 5, 6, 7, 8, // fixed64
        0xFD, 0x07, 1, 2, 3, 4, // fixed32
        0xFA, 0x07, 0x02, 0xAA, 0xBB, // bytes
        0xFB, 0x07, 0x08, 0x01, 0xFC, 0x07, // group 127 { field 1 varint }
    ];
    // pieces: <unk> (UNKNOWN), "a", "b", "ab"
    for (piece, kind) in [("<unk>", 2u8), ("a", 1), ("b", 1), ("ab", 1)] {
        let mut body = vec![0x0A, piece.len() as u8];
        body.extend_from_slice(piece.as_bytes());
        body.extend_from_slice(&[0x15, 0, 0, 0, 0, 0x18, kind]);
        bytes.push(0x0A);
        bytes.push(body.len() as u8);
        bytes.extend(body);
    }
    bytes.extend_from_slice(&[0x12, 0x02, 0x18, 0x02]); // trainer_spec { model_type: BPE }
    let sp = SentencePiece::from_bytes(&bytes).unwrap();
    assert_eq!(sp.vocab_size(), 4);
    assert_eq!(sp.encode("ab"), vec![0, 3]); // "▁" is unknown, then "ab"
}

#[test]
fn errors_name_the_problem() {
    let err = SentencePiece::from_file("/nonexistent/tokenizer.model").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/tokenizer.model"),
        "{err}"
    );
    let err = SentencePiece::from_bytes(&[0x0A, 0x7F, 0x01]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ModelProto") && msg.contains("offset 2"),
        "{msg}"
    );
    let nested = [0x12, 0x03, 0x18, 0x80, 0x80];
    let msg = SentencePiece::from_bytes(&nested).unwrap_err().to_string();
    assert!(
        msg.contains("TrainerSpec") && msg.contains("offset 3"),
        "{msg}"
    );
}
