//! Pure-Rust SentencePiece tokenizer plus the Hugging Face "slow tokenizer"
//! wrapper semantics (`LlamaTokenizer`, `InternLM2Tokenizer`).
//!
//! Several checkpoints ship only `tokenizer.model` (a SentencePiece
//! `ModelProto`) and no `tokenizer.json`. This module reads that protobuf with
//! a small hand-written, bounds-checked reader and reproduces:
//!
//! * [`SentencePiece`]: the C++/Python `sentencepiece` library (checked against
//!   `sentencepiece` 0.2.x): normalization (including the precompiled
//!   charsmap of `nmt_nfkc`-style and custom rule normalizers, read exactly
//!   rather than approximated with Unicode NFKC), the BPE, unigram, word and
//!   char models, user-defined symbols, byte fallback, unknown merging, and
//!   `decode` (dummy-prefix removal, byte pieces reassembled with one U+FFFD
//!   per invalid byte, control pieces dropped, unknown surface).
//! * [`HfSlowTokenizer`]: what `transformers` (4.40) slow tokenizers do on
//!   top of it: splitting on added/special tokens (longest match, lstrip /
//!   rstrip / single_word), legacy and non-legacy Llama chunk handling,
//!   BOS/EOS insertion, `decode` with the slow-tokenizer spacing rules, and
//!   `len(tokenizer)`.
//!
//! Known differences with upstream, all deliberate:
//! * ids that are out of range are skipped by [`SentencePiece::decode`] and
//!   [`HfSlowTokenizer::decode`] (Python raises); use the `try_` variants to
//!   get an error instead.
//! * `self_test_data` inside the model proto is ignored (the C++ loader runs
//!   it as a self check).
//! * The transformers 4.31 non-legacy Llama quirk (stripping "▁" from the
//!   first piece of every chunk that follows a special token) is not
//!   reproduced; non-legacy mode follows transformers 4.40.
//!
//! Usage:
//!
//! ```text
//! let sp = SentencePiece::from_file("model/tokenizer.model")?;
//! let ids: Vec<u32> = sp.encode("Hello world");        // = sp.encode(text) in Python
//! let text: String = sp.decode(&ids);
//!
//! let tok = HfSlowTokenizer::from_dir("model")?;      // tokenizer.model + *.json
//! let ids = tok.encode("<s>[INST] Hi [/INST]", false); // = tokenizer(text, add_special_tokens=False)
//! let text = tok.decode(&ids, true);                  // = tokenizer.decode(ids, skip_special_tokens=True)
//! let n = tok.vocab_len();                            // = len(tokenizer)
//! ```
//!
//! Normalizers: the `precompiled_charsmap` (darts-clone double array) of
//! `nmt_nfkc`, `nfkc`, `nmt_nfkc_cf` and custom-rule models is interpreted
//! exactly as the C++ library does, so no Unicode NFKC approximation is
//! needed; a model whose charsmap is empty (e.g. `identity`) is not
//! normalized, whatever its `name` says (same as upstream).
//!
//! The module is self-contained (std + `thiserror` + `serde_json`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Maximum number of pieces accepted in a model (the largest real vocabularies
/// are ~256k).
pub const MAX_PIECES: usize = 4_000_000;
/// SentencePiece refuses pieces of this many bytes or more.
pub const MAX_PIECE_BYTES: usize = 8_000;
/// Maximum size of any other string/bytes field (e.g. the precompiled charsmap).
pub const MAX_FIELD_BYTES: usize = 64 << 20;
/// Maximum model file size read by [`SentencePiece::from_file`].
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;
/// Nesting limit when skipping (deprecated) protobuf groups.
const MAX_GROUP_DEPTH: usize = 32;

const SPACE_SYMBOL: &str = "\u{2581}";
const SPACE_SYMBOL_BYTES: &[u8] = SPACE_SYMBOL.as_bytes();
const REPLACEMENT_CHAR: &[u8] = "\u{FFFD}".as_bytes();
const DEFAULT_UNK_SURFACE: &str = " \u{2047} ";
const UNK_PENALTY: f32 = 10.0;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Everything that can go wrong while loading or using a SentencePiece model
/// or a Hugging Face slow-tokenizer directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpmError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than this module accepts.
    #[error("{} is too large ({size} bytes, limit {limit})", path.display())]
    FileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The protobuf bytes are malformed (truncated, bad varint, length past
    /// the end, bad wire type, absurd counts...).
    #[error("malformed SentencePiece protobuf in {message} at byte offset {offset}: {reason}")]
    Protobuf {
        /// Protobuf message being parsed (`ModelProto`, `TrainerSpec`, ...).
        message: &'static str,
        /// Byte offset from the start of the model file.
        offset: usize,
        reason: String,
    },
    /// The protobuf parsed but describes a model SentencePiece would refuse.
    #[error("invalid SentencePiece model: {0}")]
    InvalidModel(String),
    /// A JSON file is not valid JSON.
    #[error("invalid JSON in {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A JSON config field has an unexpected type or value.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Config {
        path: PathBuf,
        field: String,
        reason: String,
    },
    /// A token id is not part of the vocabulary.
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    IdOutOfRange { id: u32, vocab_size: usize },
}

/// Result alias of this module.
pub type SpmResult<T> = std::result::Result<T, SpmError>;

// ---------------------------------------------------------------------------
// Protobuf model description
// ---------------------------------------------------------------------------

/// `ModelProto.SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// `TrainerSpec.ModelType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelType {
    Unigram,
    Bpe,
    Word,
    Char,
}

impl ModelType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => ModelType::Unigram,
            2 => ModelType::Bpe,
            3 => ModelType::Word,
            4 => ModelType::Char,
            _ => return None,
        })
    }
}

/// One entry of `ModelProto.pieces`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtoPiece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The subset of `TrainerSpec` that matters at inference time.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerSpec {
    pub model_type: ModelType,
    pub vocab_size: i32,
    pub byte_fallback: bool,
    pub treat_whitespace_as_suffix: bool,
    pub allow_whitespace_only_pieces: bool,
    pub split_digits: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
    /// Empty means the default (`<unk>`, `<s>`, `</s>`, `<pad>`), as upstream.
    pub unk_piece: String,
    pub bos_piece: String,
    pub eos_piece: String,
    pub pad_piece: String,
    /// `None` when the field is absent (decode then uses " \u{2047} ").
    pub unk_surface: Option<String>,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: ModelType::Unigram,
            vocab_size: 8000,
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
            allow_whitespace_only_pieces: false,
            split_digits: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            unk_piece: String::new(),
            bos_piece: String::new(),
            eos_piece: String::new(),
            pad_piece: String::new(),
            unk_surface: None,
        }
    }
}

/// `NormalizerSpec`.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizerSpec {
    pub name: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// A parsed SentencePiece `ModelProto` (fields not needed for inference are
/// skipped).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ModelProto {
    pub pieces: Vec<ProtoPiece>,
    pub trainer_spec: TrainerSpec,
    pub normalizer_spec: NormalizerSpec,
    pub denormalizer_spec: Option<NormalizerSpec>,
}

/// Bounds-checked protobuf wire-format reader over one message.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole file, for error messages.
    base: usize,
    message: &'static str,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8], base: usize, message: &'static str) -> Self {
        Wire {
            buf,
            pos: 0,
            base,
            message,
        }
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> SpmError {
        SpmError::Protobuf {
            message: self.message,
            offset: self.base + at,
            reason: reason.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> SpmResult<u64> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(start, "truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(start, "varint does not fit in 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err(start, "varint longer than 10 bytes"))
    }

    /// Reads a field key: (field number, wire type).
    fn key(&mut self) -> SpmResult<(u32, u8)> {
        let start = self.pos;
        let v = self.varint()?;
        let field = v >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return Err(self.err(start, format!("invalid field number {field}")));
        }
        Ok((field as u32, (v & 7) as u8))
    }

    fn take(&mut self, n: usize, what: &str) -> SpmResult<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(
                self.pos,
                format!("{what} of {n} bytes runs past the end ({left} bytes left)"),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Length-delimited payload; returns (offset of payload in `buf`, payload).
    fn len_delimited(&mut self, limit: usize, what: &str) -> SpmResult<(usize, &'a [u8])> {
        let start = self.pos;
        let len = self.varint()?;
        if len > limit as u64 {
            return Err(self.err(
                start,
                format!("{what} length {len} exceeds the limit {limit}"),
            ));
        }
        let at = self.pos;
        let bytes = self.take(len as usize, what)?;
        Ok((at, bytes))
    }

    fn string(&mut self, limit: usize, what: &str) -> SpmResult<String> {
        let (at, bytes) = self.len_delimited(limit, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.err(at, format!("{what} is not valid UTF-8 ({e})"))),
        }
    }

    fn fixed32(&mut self) -> SpmResult<u32> {
        let b = self.take(4, "fixed32")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, field: u32, wire_type: u8, depth: usize) -> SpmResult<()> {
        let start = self.pos;
        match wire_type {
            0 => {
                self.varint()?;
            }
            1 => {
                self.take(8, "fixed64")?;
            }
            2 => {
                self.len_delimited(MAX_FIELD_BYTES, "unknown field")?;
            }
            5 => {
                self.take(4, "fixed32")?;
            }
            3 => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(self.err(start, "groups nested too deeply"));
                }
                loop {
                    if self.at_end() {
                        return Err(self.err(start, format!("unterminated group {field}")));
                    }
                    let (f, wt) = self.key()?;
                    if wt == 4 {
                        if f != field {
                            return Err(self.err(start, format!("group {field} closed by {f}")));
                        }
                        break;
                    }
                    self.skip(f, wt, depth + 1)?;
                }
            }
            4 => return Err(self.err(start, format!("unexpected end of group {field}"))),
            other => return Err(self.err(start, format!("invalid wire type {other}"))),
        }
        Ok(())
    }
}

fn varint_i32(v: u64) -> i32 {
    // int32 fields: negative values are sign-extended 64-bit varints.
    v as i64 as i32
}

impl ModelProto {
    /// Parses a serialized `ModelProto` (the content of `tokenizer.model`).
    ///
    /// Never panics; malformed input gives [`SpmError::Protobuf`].
    pub fn parse(bytes: &[u8]) -> SpmResult<Self> {
        let mut model = ModelProto::default();
        let mut w = Wire::new(bytes, 0, "ModelProto");
        while !w.at_end() {
            let key_at = w.pos;
            let (field, wt) = w.key()?;
            match (field, wt) {
                (1, 2) => {
                    if model.pieces.len() >= MAX_PIECES {
                        return Err(w.err(key_at, format!("more than {MAX_PIECES} pieces")));
                    }
                    let (at, body) = w.len_delimited(MAX_FIELD_BYTES, "SentencePiece")?;
                    model.pieces.push(parse_piece(body, at)?);
                }
                (2, 2) => {
                    let (at, body) = w.len_delimited(MAX_FIELD_BYTES, "TrainerSpec")?;
                    parse_trainer_spec(body, at, &mut model.trainer_spec)?;
                }
                (3, 2) => {
                    let (at, body) = w.len_delimited(MAX_FIELD_BYTES, "NormalizerSpec")?;
                    parse_normalizer_spec(body, at, "NormalizerSpec", &mut model.normalizer_spec)?;
                }
                (5, 2) => {
                    let (at, body) =
                        w.len_delimited(MAX_FIELD_BYTES, "denormalizer NormalizerSpec")?;
                    let spec = model
                        .denormalizer_spec
                        .get_or_insert_with(NormalizerSpec::default);
                    parse_normalizer_spec(body, at, "denormalizer NormalizerSpec", spec)?;
                }
                _ => w.skip(field, wt, 0)?,
            }
        }
        Ok(model)
    }
}

fn parse_piece(buf: &[u8], base: usize) -> SpmResult<ProtoPiece> {
    let mut w = Wire::new(buf, base, "SentencePiece");
    let mut piece = ProtoPiece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    while !w.at_end() {
        let (field, wt) = w.key()?;
        match (field, wt) {
            (1, 2) => piece.piece = w.string(MAX_FIELD_BYTES, "piece")?,
            (2, 5) => piece.score = f32::from_bits(w.fixed32()?),
            (3, 0) => {
                // proto2 closed enum: unknown values leave the default.
                if let Some(k) = PieceType::from_proto(w.varint()?) {
                    piece.kind = k;
                }
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(piece)
}

fn parse_trainer_spec(buf: &[u8], base: usize, spec: &mut TrainerSpec) -> SpmResult<()> {
    let mut w = Wire::new(buf, base, "TrainerSpec");
    while !w.at_end() {
        let (field, wt) = w.key()?;
        match (field, wt) {
            (3, 0) => {
                if let Some(t) = ModelType::from_proto(w.varint()?) {
                    spec.model_type = t;
                }
            }
            (4, 0) => spec.vocab_size = varint_i32(w.varint()?),
            (24, 0) => spec.treat_whitespace_as_suffix = w.varint()? != 0,
            (25, 0) => spec.split_digits = w.varint()? != 0,
            (26, 0) => spec.allow_whitespace_only_pieces = w.varint()? != 0,
            (35, 0) => spec.byte_fallback = w.varint()? != 0,
            (40, 0) => spec.unk_id = varint_i32(w.varint()?),
            (41, 0) => spec.bos_id = varint_i32(w.varint()?),
            (42, 0) => spec.eos_id = varint_i32(w.varint()?),
            (43, 0) => spec.pad_id = varint_i32(w.varint()?),
            (44, 2) => spec.unk_surface = Some(w.string(MAX_FIELD_BYTES, "unk_surface")?),
            (45, 2) => spec.unk_piece = w.string(MAX_FIELD_BYTES, "unk_piece")?,
            (46, 2) => spec.bos_piece = w.string(MAX_FIELD_BYTES, "bos_piece")?,
            (47, 2) => spec.eos_piece = w.string(MAX_FIELD_BYTES, "eos_piece")?,
            (48, 2) => spec.pad_piece = w.string(MAX_FIELD_BYTES, "pad_piece")?,
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(())
}

fn parse_normalizer_spec(
    buf: &[u8],
    base: usize,
    message: &'static str,
    spec: &mut NormalizerSpec,
) -> SpmResult<()> {
    let mut w = Wire::new(buf, base, message);
    while !w.at_end() {
        let (field, wt) = w.key()?;
        match (field, wt) {
            (1, 2) => spec.name = w.string(MAX_FIELD_BYTES, "name")?,
            (2, 2) => {
                let (_, b) = w.len_delimited(MAX_FIELD_BYTES, "precompiled_charsmap")?;
                spec.precompiled_charsmap = b.to_vec();
            }
            (3, 0) => spec.add_dummy_prefix = w.varint()? != 0,
            (4, 0) => spec.remove_extra_whitespaces = w.varint()? != 0,
            (5, 0) => spec.escape_whitespaces = w.varint()? != 0,
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// UTF-8 helpers with SentencePiece's exact rules
// ---------------------------------------------------------------------------

/// `string_util::OneCharLen`: length of the UTF-8 sequence from its lead byte
/// (continuation / invalid lead bytes count as 1).
fn one_char_len(b: u8) -> usize {
    const TABLE: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    TABLE[(b >> 4) as usize] as usize
}

/// `string_util::IsValidDecodeUTF8`: `Some(len)` of one valid character at
/// the start of `s`, `None` if the first byte starts an invalid sequence
/// (the caller then consumes exactly one byte).
fn valid_utf8_prefix(s: &[u8]) -> Option<usize> {
    let b0 = *s.first()?;
    let trail = |i: usize| s.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    let valid_cp = |c: u32| !(0xD800..0xE000).contains(&c) && c <= 0x10FFFF;
    if b0 < 0x80 {
        return Some(1);
    }
    if b0 & 0xE0 == 0xC0 && trail(1) {
        let c = (u32::from(b0 & 0x1F) << 6) | u32::from(s[1] & 0x3F);
        if c >= 0x80 {
            return Some(2);
        }
    } else if b0 & 0xF0 == 0xE0 && trail(1) && trail(2) {
        let c =
            (u32::from(b0 & 0x0F) << 12) | (u32::from(s[1] & 0x3F) << 6) | u32::from(s[2] & 0x3F);
        if c >= 0x800 && valid_cp(c) {
            return Some(3);
        }
    } else if b0 & 0xF8 == 0xF0 && trail(1) && trail(2) && trail(3) {
        let c = (u32::from(b0 & 0x07) << 18)
            | (u32::from(s[1] & 0x3F) << 12)
            | (u32::from(s[2] & 0x3F) << 6)
            | u32::from(s[3] & 0x3F);
        if (0x10000..=0x10FFFF).contains(&c) {
            return Some(4);
        }
    }
    None
}

/// Converts bytes to a `String`, replacing every byte that does not start a
/// valid character with U+FFFD (SentencePiece replaces per byte; std's lossy
/// conversion replaces per maximal invalid subsequence).
fn bytes_to_string_per_byte(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        match valid_utf8_prefix(&bytes[i..]) {
            Some(n) => {
                out.extend_from_slice(&bytes[i..i + n]);
                i += n;
            }
            None => {
                out.extend_from_slice(REPLACEMENT_CHAR);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Parses a byte piece name `<0xXX>` (upper-case hex, as SentencePiece).
fn piece_to_byte(piece: &str) -> Option<u8> {
    let b = piece.as_bytes();
    if b.len() != 6 || !piece.starts_with("<0x") || b[5] != b'>' {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    Some(hex(b[3])? * 16 + hex(b[4])?)
}

fn byte_piece_name(b: u8) -> String {
    format!("<0x{b:02X}>")
}

// ---------------------------------------------------------------------------
// Byte trie (user-defined symbols, unigram vocabulary, added tokens)
// ---------------------------------------------------------------------------

const NO_VALUE: u32 = u32::MAX;

/// Compact byte trie: node `n` owns edges `edge_start[n]..edge_start[n+1]`
/// (sorted by label).
#[derive(Clone, Debug, Default)]
struct PrefixTrie {
    edge_start: Vec<u32>,
    labels: Vec<u8>,
    targets: Vec<u32>,
    values: Vec<u32>,
}

impl PrefixTrie {
    fn build(mut keys: Vec<(&[u8], u32)>) -> Self {
        keys.retain(|(k, _)| !k.is_empty());
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|a, b| a.0 == b.0);
        let mut trie = PrefixTrie::default();
        let mut queue = VecDeque::new();
        queue.push_back((0usize, keys.len(), 0usize));
        let mut next_node: u32 = 1;
        while let Some((lo, hi, depth)) = queue.pop_front() {
            trie.edge_start.push(trie.labels.len() as u32);
            let mut i = lo;
            let mut value = NO_VALUE;
            if i < hi && keys[i].0.len() == depth {
                value = keys[i].1;
                i += 1;
            }
            trie.values.push(value);
            while i < hi {
                let b = keys[i].0[depth];
                let mut j = i + 1;
                while j < hi && keys[j].0[depth] == b {
                    j += 1;
                }
                trie.labels.push(b);
                trie.targets.push(next_node);
                next_node += 1;
                queue.push_back((i, j, depth + 1));
                i = j;
            }
        }
        trie.edge_start.push(trie.labels.len() as u32);
        trie
    }

    /// Calls `f(len, value)` for every key that is a prefix of `s`, shortest
    /// first.
    fn for_each_prefix(&self, s: &[u8], mut f: impl FnMut(usize, u32)) {
        if self.values.is_empty() {
            return;
        }
        let mut node = 0usize;
        for (i, &b) in s.iter().enumerate() {
            let a = self.edge_start[node] as usize;
            let e = self.edge_start[node + 1] as usize;
            match self.labels[a..e].binary_search(&b) {
                Ok(k) => node = self.targets[a + k] as usize,
                Err(_) => return,
            }
            let v = self.values[node];
            if v != NO_VALUE {
                f(i + 1, v);
            }
        }
    }

    /// Longest key that is a prefix of `s`: (length, value).
    fn longest_prefix(&self, s: &[u8]) -> Option<(usize, u32)> {
        let mut best = None;
        self.for_each_prefix(s, |len, v| best = Some((len, v)));
        best
    }
}

// ---------------------------------------------------------------------------
// Normalizer (with the darts-clone precompiled charsmap)
// ---------------------------------------------------------------------------

/// Precompiled charsmap: `<u32 trie size><darts-clone double array><NUL
/// separated replacement strings>`.
#[derive(Clone, Debug)]
struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    fn parse(blob: &[u8]) -> SpmResult<Self> {
        let broken =
            |reason: &str| SpmError::InvalidModel(format!("precompiled_charsmap: {reason}"));
        if blob.len() <= 4 {
            return Err(broken("blob for normalization rule is broken"));
        }
        let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        if trie_size >= blob.len() || 4 + trie_size > blob.len() {
            return Err(broken("trie data size exceeds the input blob size"));
        }
        let trie = &blob[4..4 + trie_size];
        let units = trie
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(CharsMap {
            units,
            normalized: blob[4 + trie_size..].to_vec(),
        })
    }

    /// darts-clone `commonPrefixSearch`, keeping the longest match:
    /// returns (matched length, offset of the replacement string).
    fn longest_match(&self, key: &[u8]) -> Option<(usize, usize)> {
        let units = &self.units;
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let label = |u: u32| u & ((1 << 31) | 0xFF);
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let value = |u: u32| (u & ((1 << 31) - 1)) as usize;
        let mut node_pos = 0usize;
        let mut unit = *units.first()?;
        node_pos ^= offset(unit);
        let mut best = None;
        for (i, &b) in key.iter().enumerate() {
            node_pos ^= b as usize;
            unit = *units.get(node_pos)?;
            if label(unit) != u32::from(b) {
                break;
            }
            node_pos ^= offset(unit);
            if has_leaf(unit) {
                let v = value(*units.get(node_pos)?);
                best = Some((i + 1, v));
            }
        }
        best
    }

    fn replacement(&self, offset: usize) -> &[u8] {
        let rest = self.normalized.get(offset..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }
}

#[derive(Clone, Debug)]
struct Normalizer {
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
    charsmap: Option<CharsMap>,
}

impl Normalizer {
    fn new(spec: &NormalizerSpec, treat_whitespace_as_suffix: bool) -> SpmResult<Self> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        Ok(Normalizer {
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
            escape_whitespaces: spec.escape_whitespaces,
            treat_whitespace_as_suffix,
            charsmap,
        })
    }

    /// `Normalizer::NormalizePrefix`: (normalized piece, consumed bytes).
    fn normalize_prefix<'a>(
        &'a self,
        input: &'a [u8],
        matcher: Option<&PrefixTrie>,
    ) -> (&'a [u8], usize) {
        if let Some(m) = matcher {
            if let Some((len, _)) = m.longest_prefix(input) {
                return (&input[..len], len);
            }
        }
        if let Some(cm) = &self.charsmap {
            if let Some((len, off)) = cm.longest_match(input) {
                return (cm.replacement(off), len);
            }
        }
        match valid_utf8_prefix(input) {
            Some(n) => (&input[..n], n),
            None => (REPLACEMENT_CHAR, 1),
        }
    }

    fn normalize(&self, input: &[u8], matcher: Option<&PrefixTrie>) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() * 3 / 2 + 4);
        let mut input = input;
        if input.is_empty() {
            return out;
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (sp, n) = self.normalize_prefix(input, matcher);
                if sp != b" " {
                    break;
                }
                input = &input[n..];
            }
        }
        if input.is_empty() {
            return out;
        }
        let space: &[u8] = if self.escape_whitespaces {
            SPACE_SYMBOL_BYTES
        } else {
            b" "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut sp, n) = self.normalize_prefix(input, matcher);
            while is_prev_space && sp.first() == Some(&b' ') {
                sp = &sp[1..];
            }
            if !sp.is_empty() {
                for &b in sp {
                    if self.escape_whitespaces && b == b' ' {
                        out.extend_from_slice(SPACE_SYMBOL_BYTES);
                    } else {
                        out.push(b);
                    }
                }
                is_prev_space = sp.last() == Some(&b' ');
            }
            input = &input[n..];
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        out
    }
}

// ---------------------------------------------------------------------------
// SentencePiece processor
// ---------------------------------------------------------------------------

/// Unigram-specific data.
#[derive(Clone, Debug)]
struct UnigramData {
    trie: PrefixTrie,
    min_score: f32,
    max_score: f32,
}

/// One output unit of a model before the id post-processing: a piece given as
/// a byte range of the normalized string, and its id (`PieceToId`).
#[derive(Clone, Copy, Debug)]
struct RawPiece {
    start: usize,
    end: usize,
    id: u32,
}

/// One encoded token: a vocabulary piece (byte range of the normalized text,
/// possibly several merged unknown pieces) or a byte-fallback piece.
#[derive(Clone, Copy, Debug)]
enum EncodedToken {
    Piece { id: u32, start: usize, end: usize },
    Byte { id: u32, byte: u8 },
}

impl EncodedToken {
    fn id(&self) -> u32 {
        match *self {
            EncodedToken::Piece { id, .. } | EncodedToken::Byte { id, .. } => id,
        }
    }
}

/// BPE merge candidate in the priority queue.
#[derive(Clone, Copy, Debug)]
struct MergeCandidate {
    score: f32,
    left: u32,
    right: u32,
    size: usize,
}

impl PartialEq for MergeCandidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MergeCandidate {}
impl PartialOrd for MergeCandidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MergeCandidate {
    /// Highest score first, then leftmost (SentencePiece's agenda order).
    /// Scores are sanitized (no NaN, no -0.0) before they get here.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy, Debug)]
struct BpeSymbol {
    start: usize,
    len: usize,
    prev: i64,
    next: i64,
    freeze: bool,
}

/// A loaded SentencePiece model: encode / decode with the semantics of the
/// Python `sentencepiece` library (`encode(text)` with `out_type=int`).
#[derive(Clone, Debug)]
pub struct SentencePiece {
    proto: ModelProto,
    /// NORMAL, USER_DEFINED and UNUSED pieces.
    pieces: HashMap<Vec<u8>, u32>,
    /// CONTROL, UNKNOWN and BYTE pieces.
    reserved: HashMap<Vec<u8>, u32>,
    unk_id: u32,
    /// `byte_to_id[b]` when byte fallback is enabled.
    byte_to_id: Option<Vec<u32>>,
    /// Byte value of each BYTE piece, indexed by id (None for other pieces).
    id_to_byte: Vec<Option<u8>>,
    /// Scores used by the BPE agenda (NaN and -0.0 sanitized).
    merge_scores: Vec<f32>,
    user_defined: Option<PrefixTrie>,
    unigram: Option<UnigramData>,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
}

impl SentencePiece {
    /// Loads `tokenizer.model`.
    pub fn from_file(path: impl AsRef<Path>) -> SpmResult<Self> {
        let bytes = read_file_limited(path.as_ref(), MAX_MODEL_FILE_BYTES)?;
        Self::from_bytes(&bytes)
    }

    /// Loads a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> SpmResult<Self> {
        Self::from_proto(ModelProto::parse(bytes)?)
    }

    /// Builds the processor from a parsed proto, with the same validation as
    /// SentencePiece's `InitializePieces`.
    pub fn from_proto(proto: ModelProto) -> SpmResult<Self> {
        let n = proto.pieces.len();
        if n > MAX_PIECES {
            return Err(SpmError::InvalidModel(format!(
                "{n} pieces exceed the limit {MAX_PIECES}"
            )));
        }
        let byte_fallback = proto.trainer_spec.byte_fallback;
        let mut pieces: HashMap<Vec<u8>, u32> = HashMap::with_capacity(n);
        let mut reserved: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut unk_id: Option<u32> = None;
        let mut byte_to_id = vec![NO_VALUE; 256];
        let mut id_to_byte = vec![None; n];
        let mut user_keys: Vec<(&[u8], u32)> = Vec::new();
        let mut merge_scores = Vec::with_capacity(n);
        for (i, p) in proto.pieces.iter().enumerate() {
            let id = i as u32;
            let text = p.piece.as_str();
            if text.is_empty() {
                return Err(SpmError::InvalidModel(format!("piece {id} is empty")));
            }
            if text.len() >= MAX_PIECE_BYTES {
                return Err(SpmError::InvalidModel(format!(
                    "piece {id} is too long ({} bytes)",
                    text.len()
                )));
            }
            if text.contains('\0') {
                return Err(SpmError::InvalidModel(format!(
                    "piece {id} contains a NUL character"
                )));
            }
            let normal = matches!(
                p.kind,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let map = if normal { &mut pieces } else { &mut reserved };
            if map.insert(text.as_bytes().to_vec(), id).is_some() {
                return Err(SpmError::InvalidModel(format!(
                    "piece {text:?} is already defined"
                )));
            }
            match p.kind {
                PieceType::UserDefined => user_keys.push((text.as_bytes(), id)),
                PieceType::Unknown => {
                    if unk_id.is_some() {
                        return Err(SpmError::InvalidModel("unk is already defined".into()));
                    }
                    unk_id = Some(id);
                }
                PieceType::Byte => {
                    if !byte_fallback {
                        return Err(SpmError::InvalidModel(format!(
                            "byte piece {text} is found although `byte_fallback` is false"
                        )));
                    }
                    let Some(b) = piece_to_byte(text) else {
                        return Err(SpmError::InvalidModel(format!(
                            "byte piece {text} is invalid"
                        )));
                    };
                    byte_to_id[b as usize] = id;
                    id_to_byte[i] = Some(b);
                }
                _ => {}
            }
            let s = p.score;
            merge_scores.push(if s.is_nan() {
                f32::NEG_INFINITY
            } else {
                s + 0.0
            });
        }
        let Some(unk_id) = unk_id else {
            return Err(SpmError::InvalidModel("unk is not defined".into()));
        };
        let byte_to_id = if byte_fallback {
            if let Some(b) = byte_to_id.iter().position(|&v| v == NO_VALUE) {
                return Err(SpmError::InvalidModel(format!(
                    "there are not 256 byte pieces although `byte_fallback` is true (missing <0x{b:02X}>)"
                )));
            }
            Some(byte_to_id)
        } else {
            None
        };
        let user_defined = if user_keys.is_empty() {
            None
        } else {
            Some(PrefixTrie::build(user_keys))
        };
        let unigram = if proto.trainer_spec.model_type == ModelType::Unigram {
            let mut min_score = f32::MAX;
            let mut max_score = f32::MIN_POSITIVE; // C++ FLT_MIN
            for p in &proto.pieces {
                if p.kind == PieceType::Normal {
                    min_score = min_score.min(p.score);
                    max_score = max_score.max(p.score);
                }
            }
            let keys: Vec<(&[u8], u32)> = pieces.iter().map(|(k, &v)| (k.as_slice(), v)).collect();
            if keys.is_empty() {
                return Err(SpmError::InvalidModel("no pieces are loaded".into()));
            }
            Some(UnigramData {
                trie: PrefixTrie::build(keys),
                min_score,
                max_score,
            })
        } else {
            None
        };
        let normalizer = Normalizer::new(
            &proto.normalizer_spec,
            proto.trainer_spec.treat_whitespace_as_suffix,
        )?;
        let denormalizer = match &proto.denormalizer_spec {
            Some(spec) if !spec.precompiled_charsmap.is_empty() => {
                Some(Normalizer::new(spec, false)?)
            }
            _ => None,
        };
        Ok(SentencePiece {
            proto,
            pieces,
            reserved,
            unk_id,
            byte_to_id,
            id_to_byte,
            merge_scores,
            user_defined,
            unigram,
            normalizer,
            denormalizer,
        })
    }

    /// The parsed model proto.
    pub fn proto(&self) -> &ModelProto {
        &self.proto
    }

    /// `TrainerSpec.model_type`.
    pub fn model_type(&self) -> ModelType {
        self.proto.trainer_spec.model_type
    }

    /// Whether unknown characters are decomposed into `<0xXX>` byte pieces.
    pub fn byte_fallback(&self) -> bool {
        self.byte_to_id.is_some()
    }

    /// `NormalizerSpec.add_dummy_prefix`.
    pub fn add_dummy_prefix(&self) -> bool {
        self.normalizer.add_dummy_prefix
    }

    /// Overrides `NormalizerSpec.add_dummy_prefix` (what transformers does to
    /// the proto for non-legacy Llama tokenizers). Affects encode and decode.
    pub fn set_add_dummy_prefix(&mut self, value: bool) {
        self.normalizer.add_dummy_prefix = value;
        self.proto.normalizer_spec.add_dummy_prefix = value;
    }

    /// Number of pieces (`GetPieceSize`).
    pub fn vocab_size(&self) -> usize {
        self.proto.pieces.len()
    }

    /// Piece string of `id`.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.proto.pieces.get(id as usize).map(|p| p.piece.as_str())
    }

    /// Id of `piece` if it is in the vocabulary. (SentencePiece's
    /// `PieceToId` returns the unknown id instead of `None`; see
    /// [`Self::piece_to_id_or_unk`].)
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.lookup(piece.as_bytes())
    }

    /// SentencePiece's `PieceToId`: unknown pieces map to [`Self::unk_id`].
    pub fn piece_to_id_or_unk(&self, piece: &str) -> u32 {
        self.lookup(piece.as_bytes()).unwrap_or(self.unk_id)
    }

    fn lookup(&self, piece: &[u8]) -> Option<u32> {
        self.reserved
            .get(piece)
            .or_else(|| self.pieces.get(piece))
            .copied()
    }

    fn lookup_or_unk(&self, piece: &[u8]) -> u32 {
        self.lookup(piece).unwrap_or(self.unk_id)
    }

    /// Type of piece `id`.
    pub fn piece_type(&self, id: u32) -> Option<PieceType> {
        self.proto.pieces.get(id as usize).map(|p| p.kind)
    }

    /// Score of piece `id`.
    pub fn score(&self, id: u32) -> Option<f32> {
        self.proto.pieces.get(id as usize).map(|p| p.score)
    }

    fn kind_is(&self, id: u32, kind: PieceType) -> bool {
        self.piece_type(id) == Some(kind)
    }

    /// CONTROL piece (`<s>`, `</s>`, ...).
    pub fn is_control(&self, id: u32) -> bool {
        self.kind_is(id, PieceType::Control)
    }

    /// BYTE piece (`<0xXX>`).
    pub fn is_byte(&self, id: u32) -> bool {
        self.kind_is(id, PieceType::Byte)
    }

    /// The UNKNOWN piece.
    pub fn is_unknown(&self, id: u32) -> bool {
        self.kind_is(id, PieceType::Unknown)
    }

    /// UNUSED piece.
    pub fn is_unused(&self, id: u32) -> bool {
        self.kind_is(id, PieceType::Unused)
    }

    /// USER_DEFINED piece.
    pub fn is_user_defined(&self, id: u32) -> bool {
        self.kind_is(id, PieceType::UserDefined)
    }

    /// Byte value of a BYTE piece.
    pub fn byte_value(&self, id: u32) -> Option<u8> {
        self.id_to_byte.get(id as usize).copied().flatten()
    }

    /// Id of the UNKNOWN piece.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    fn special_piece_id(&self, name: &str, default: &str, kind: PieceType) -> Option<u32> {
        let name = if name.is_empty() { default } else { name };
        let id = self.lookup_or_unk(name.as_bytes());
        self.kind_is(id, kind).then_some(id)
    }

    /// `bos_id()`: id of the `bos_piece` if it is a CONTROL piece.
    pub fn bos_id(&self) -> Option<u32> {
        self.special_piece_id(
            &self.proto.trainer_spec.bos_piece,
            "<s>",
            PieceType::Control,
        )
    }

    /// `eos_id()`: id of the `eos_piece` if it is a CONTROL piece.
    pub fn eos_id(&self) -> Option<u32> {
        self.special_piece_id(
            &self.proto.trainer_spec.eos_piece,
            "</s>",
            PieceType::Control,
        )
    }

    /// `pad_id()`: id of the `pad_piece` if it is a CONTROL piece.
    pub fn pad_id(&self) -> Option<u32> {
        self.special_piece_id(
            &self.proto.trainer_spec.pad_piece,
            "<pad>",
            PieceType::Control,
        )
    }

    /// The normalized form of `text` (`SentencePieceProcessor::Normalize`),
    /// "▁" for escaped spaces.
    pub fn normalize(&self, text: &str) -> String {
        bytes_to_string_per_byte(&self.normalize_bytes(text))
    }

    fn normalize_bytes(&self, text: &str) -> Vec<u8> {
        self.normalizer
            .normalize(text.as_bytes(), self.user_defined.as_ref())
    }

    /// Encodes `text` to ids, like Python `sp.encode(text)`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalize_bytes(text);
        self.encode_normalized(&normalized)
            .iter()
            .map(EncodedToken::id)
            .collect()
    }

    /// Encodes `text` to piece strings, like `sp.encode(text, out_type=str)`
    /// (merged unknown runs are one piece; byte fallback gives `<0xXX>`).
    pub fn encode_as_pieces(&self, text: &str) -> Vec<String> {
        self.encode_with_pieces(text)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// Encodes `text` to (piece string, id) pairs.
    pub fn encode_with_pieces(&self, text: &str) -> Vec<(String, u32)> {
        let normalized = self.normalize_bytes(text);
        self.encode_normalized(&normalized)
            .into_iter()
            .map(|t| match t {
                EncodedToken::Piece { id, start, end } => {
                    (bytes_to_string_per_byte(&normalized[start..end]), id)
                }
                EncodedToken::Byte { id, byte } => (byte_piece_name(byte), id),
            })
            .collect()
    }

    /// Model encode + `PopulateSentencePieceText` (unknown merging, byte
    /// fallback).
    fn encode_normalized(&self, normalized: &[u8]) -> Vec<EncodedToken> {
        if normalized.is_empty() {
            return Vec::new();
        }
        let raw = match self.model_type() {
            ModelType::Bpe => self.encode_bpe(normalized),
            ModelType::Unigram => self.encode_unigram(normalized),
            ModelType::Word => self.encode_word(normalized),
            ModelType::Char => self.encode_char(normalized),
        };
        let mut out: Vec<EncodedToken> = Vec::with_capacity(raw.len());
        let mut prev_unk = false;
        for r in raw {
            let is_unk = r.id == self.unk_id;
            if self.is_control(r.id) {
                out.push(EncodedToken::Piece {
                    id: r.id,
                    start: r.start,
                    end: r.end,
                });
            } else if is_unk && self.byte_to_id.is_some() {
                let table = self.byte_to_id.as_deref().unwrap_or(&[]);
                for &b in &normalized[r.start..r.end] {
                    let id = table.get(b as usize).copied().unwrap_or(self.unk_id);
                    out.push(EncodedToken::Byte { id, byte: b });
                }
            } else if prev_unk && is_unk {
                if let Some(EncodedToken::Piece { end, .. }) = out.last_mut() {
                    *end = r.end;
                }
            } else {
                out.push(EncodedToken::Piece {
                    id: r.id,
                    start: r.start,
                    end: r.end,
                });
            }
            prev_unk = is_unk;
        }
        out
    }

    /// `PrefixMatcher::PrefixMatch`: (length, matched a user-defined symbol).
    fn prefix_match(&self, s: &[u8]) -> (usize, bool) {
        if let Some(m) = &self.user_defined {
            if let Some((len, _)) = m.longest_prefix(s) {
                return (len, true);
            }
        }
        (one_char_len(s[0]).min(s.len()), false)
    }

    fn encode_bpe(&self, s: &[u8]) -> Vec<RawPiece> {
        let mut syms: Vec<BpeSymbol> = Vec::with_capacity(s.len());
        let mut pos = 0;
        while pos < s.len() {
            let (len, freeze) = self.prefix_match(&s[pos..]);
            let idx = syms.len() as i64;
            syms.push(BpeSymbol {
                start: pos,
                len,
                prev: idx - 1,
                next: if pos + len >= s.len() { -1 } else { idx + 1 },
                freeze,
            });
            pos += len;
        }
        let mut agenda: BinaryHeap<MergeCandidate> = BinaryHeap::new();
        // Reverse merge rules for UNUSED pieces, keyed by content as upstream.
        let mut rev_merge: HashMap<&[u8], (&[u8], &[u8])> = HashMap::new();

        for i in 1..syms.len() {
            self.bpe_maybe_add(
                s,
                &syms,
                &mut agenda,
                &mut rev_merge,
                i as i64 - 1,
                i as i64,
            );
        }
        while let Some(top) = agenda.pop() {
            let (li, ri) = (top.left as usize, top.right as usize);
            let (l, r) = (syms[li], syms[ri]);
            if l.len == 0 || r.len == 0 || l.len + r.len != top.size {
                continue;
            }
            syms[li].len += r.len;
            syms[li].next = r.next;
            if r.next >= 0 {
                syms[r.next as usize].prev = li as i64;
            }
            syms[ri].len = 0;
            let prev = syms[li].prev;
            let next = syms[li].next;
            self.bpe_maybe_add(s, &syms, &mut agenda, &mut rev_merge, prev, li as i64);
            self.bpe_maybe_add(s, &syms, &mut agenda, &mut rev_merge, li as i64, next);
        }

        let base = s.as_ptr() as usize;
        let mut out = Vec::with_capacity(syms.len());
        let mut stack: Vec<&[u8]> = Vec::new();
        let mut index: i64 = if syms.is_empty() { -1 } else { 0 };
        while index >= 0 {
            let sym = syms[index as usize];
            stack.push(&s[sym.start..sym.start + sym.len]);
            while let Some(w) = stack.pop() {
                let id = self.lookup_or_unk(w);
                if self.is_unused(id) {
                    if let Some(&(a, b)) = rev_merge.get(w) {
                        stack.push(b);
                        stack.push(a);
                        continue;
                    }
                }
                // `w` always points into `s`.
                let start = w.as_ptr() as usize - base;
                out.push(RawPiece {
                    start,
                    end: start + w.len(),
                    id,
                });
            }
            index = sym.next;
        }
        out
    }

    /// Pushes the merge of `left` and `right` to the agenda if the
    /// concatenation is a vocabulary piece (`MaybeAddNewSymbolPair`).
    fn bpe_maybe_add<'a>(
        &self,
        s: &'a [u8],
        syms: &[BpeSymbol],
        agenda: &mut BinaryHeap<MergeCandidate>,
        rev_merge: &mut HashMap<&'a [u8], (&'a [u8], &'a [u8])>,
        left: i64,
        right: i64,
    ) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (syms[left as usize], syms[right as usize]);
        if l.freeze || r.freeze {
            return;
        }
        let piece = &s[l.start..l.start + l.len + r.len];
        let Some(&id) = self.pieces.get(piece) else {
            return;
        };
        agenda.push(MergeCandidate {
            score: self.merge_scores[id as usize],
            left: left as u32,
            right: right as u32,
            size: piece.len(),
        });
        if self.is_unused(id) {
            rev_merge.insert(
                piece,
                (&s[l.start..l.start + l.len], &s[r.start..r.start + r.len]),
            );
        }
    }

    fn encode_unigram(&self, s: &[u8]) -> Vec<RawPiece> {
        let Some(u) = &self.unigram else {
            return Vec::new();
        };
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f32,
            start: i64,
        }
        let size = s.len();
        let unk_score = u.min_score - UNK_PENALTY;
        let mut best = vec![
            Best {
                id: self.unk_id,
                score: 0.0,
                start: -1,
            };
            size + 1
        ];
        let mut starts_at = 0usize;
        while starts_at < size {
            let till_here = best[starts_at].score;
            let mblen = one_char_len(s[starts_at]).min(size - starts_at);
            let mut has_single_node = false;
            u.trie.for_each_prefix(&s[starts_at..], |len, id| {
                if self.is_unused(id) {
                    return;
                }
                // Upstream computes these candidates in double precision.
                let score: f64 = if self.is_user_defined(id) {
                    f64::from(len as f32 * u.max_score) - 0.1
                } else {
                    f64::from(self.proto.pieces[id as usize].score)
                };
                let candidate = score + f64::from(till_here);
                let target = &mut best[starts_at + len];
                if target.start == -1 || candidate > f64::from(target.score) {
                    *target = Best {
                        id,
                        score: candidate as f32,
                        start: starts_at as i64,
                    };
                }
                if len == mblen {
                    has_single_node = true;
                }
            });
            if !has_single_node {
                let candidate = unk_score + till_here;
                let target = &mut best[starts_at + mblen];
                if target.start == -1 || candidate > target.score {
                    *target = Best {
                        id: self.unk_id,
                        score: candidate,
                        start: starts_at as i64,
                    };
                }
            }
            starts_at += mblen;
        }
        let mut out = Vec::new();
        let mut ends_at = size;
        while ends_at > 0 {
            let node = best[ends_at];
            if node.start < 0 || node.start as usize >= ends_at {
                break; // unreachable for well-formed input; never loop forever
            }
            out.push(RawPiece {
                start: node.start as usize,
                end: ends_at,
                id: node.id,
            });
            ends_at = node.start as usize;
        }
        out.reverse();
        out
    }

    fn encode_word(&self, s: &[u8]) -> Vec<RawPiece> {
        // SplitIntoWords(normalized) with the default (prefix) whitespace.
        let mut out: Vec<RawPiece> = Vec::new();
        let mut pos = 0;
        while pos < s.len() {
            let len = one_char_len(s[pos]).min(s.len() - pos);
            let is_ws = &s[pos..pos + len] == SPACE_SYMBOL_BYTES;
            if pos == 0 || is_ws {
                out.push(RawPiece {
                    start: pos,
                    end: pos,
                    id: 0,
                });
            }
            if let Some(last) = out.last_mut() {
                last.end = pos + len;
            }
            pos += len;
        }
        for p in &mut out {
            p.id = self.lookup_or_unk(&s[p.start..p.end]);
        }
        out
    }

    fn encode_char(&self, s: &[u8]) -> Vec<RawPiece> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < s.len() {
            let (len, _) = self.prefix_match(&s[pos..]);
            out.push(RawPiece {
                start: pos,
                end: pos + len,
                id: self.lookup_or_unk(&s[pos..pos + len]),
            });
            pos += len;
        }
        out
    }

    /// Decodes ids like Python `sp.decode(ids)`. Out-of-range ids are skipped
    /// (Python raises; see [`Self::try_decode`]).
    pub fn decode(&self, ids: &[u32]) -> String {
        let items = ids
            .iter()
            .filter_map(|&id| self.id_to_piece(id).map(|p| (Cow::Borrowed(p), id)));
        self.decode_items(items)
    }

    /// Like [`Self::decode`] but fails on an out-of-range id.
    pub fn try_decode(&self, ids: &[u32]) -> SpmResult<String> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(SpmError::IdOutOfRange {
                id,
                vocab_size: self.vocab_size(),
            });
        }
        Ok(self.decode(ids))
    }

    /// Decodes piece strings (`sp.decode(pieces)`); each piece is mapped to
    /// its id with `PieceToId` (unknown strings decode as themselves).
    pub fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let items = pieces.iter().map(|p| {
            let p = p.as_ref();
            (Cow::Borrowed(p), self.piece_to_id_or_unk(p))
        });
        self.decode_items(items)
    }

    /// `SentencePieceProcessor::Decode` over (piece, id) pairs.
    fn decode_items<'p>(&self, items: impl Iterator<Item = (Cow<'p, str>, u32)>) -> String {
        let spec = &self.proto.normalizer_spec;
        let strip_bos_ws = spec.add_dummy_prefix || spec.remove_extra_whitespaces;
        let mut text: Vec<u8> = Vec::new();
        let mut pending_bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for (piece, id) in items {
            if let (true, Some(b)) = (self.is_byte(id), piece_to_byte(&piece)) {
                pending_bytes.push(b);
                continue;
            }
            flush_bytes(&mut pending_bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = false;
            if self.is_control(id) {
                continue;
            }
            if self.is_unknown(id) {
                if self.id_to_piece(id) == Some(piece.as_ref()) {
                    let surface = self
                        .proto
                        .trainer_spec
                        .unk_surface
                        .as_deref()
                        .unwrap_or(DEFAULT_UNK_SURFACE);
                    text.extend_from_slice(surface.as_bytes());
                } else {
                    text.extend_from_slice(piece.as_bytes());
                }
                continue;
            }
            let mut p: &str = &piece;
            if is_bos_ws && strip_bos_ws {
                if let Some(rest) = p.strip_prefix(SPACE_SYMBOL) {
                    p = rest;
                    bos_ws_seen = !spec.remove_extra_whitespaces;
                }
            }
            text.extend_from_slice(p.replace(SPACE_SYMBOL, " ").as_bytes());
        }
        flush_bytes(&mut pending_bytes, &mut text);
        if let Some(d) = &self.denormalizer {
            text = d.normalize(&text, None);
        }
        bytes_to_string_per_byte(&text)
    }
}

/// Appends accumulated byte-piece bytes, one U+FFFD per invalid byte.
fn flush_bytes(pending: &mut Vec<u8>, text: &mut Vec<u8>) {
    if pending.is_empty() {
        return;
    }
    let mut i = 0;
    while i < pending.len() {
        match valid_utf8_prefix(&pending[i..]) {
            Some(n) => {
                text.extend_from_slice(&pending[i..i + n]);
                i += n;
            }
            None => {
                text.extend_from_slice(REPLACEMENT_CHAR);
                i += 1;
            }
        }
    }
    pending.clear();
}

fn read_file_limited(path: &Path, limit: u64) -> SpmResult<Vec<u8>> {
    let io_err = |source| SpmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io_err)?.len();
    if size > limit {
        return Err(SpmError::FileTooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(io_err)
}

// ---------------------------------------------------------------------------
// Hugging Face slow tokenizer wrapper
// ---------------------------------------------------------------------------

/// Which transformers slow-tokenizer class is reproduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowTokenizerFlavor {
    /// `LlamaTokenizer` (transformers 4.40; legacy or not, from the config).
    Llama,
    /// `InternLM2Tokenizer` (remote code of InternLM2 / InternVL / HoVLE /
    /// Mono-InternVL): legacy encoding, its own decode spacing.
    InternLM2,
}

/// An added token (`tokenizer.added_tokens_decoder[id]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    pub special: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub single_word: bool,
    pub normalized: bool,
}

/// Overrides for [`HfSlowTokenizer::from_dir_with_options`] (the equivalent
/// of `from_pretrained(..., legacy=...)`).
#[derive(Clone, Debug, Default)]
pub struct HfSlowOptions {
    /// Default: from `tokenizer_class` (`InternLM2Tokenizer*` -> InternLM2,
    /// anything else -> Llama).
    pub flavor: Option<SlowTokenizerFlavor>,
    /// Default: `legacy` of tokenizer_config.json, `true` when absent/null.
    pub legacy: Option<bool>,
}

/// Token description as found in the JSON files.
#[derive(Clone, Debug)]
struct TokenSpec {
    content: String,
    lstrip: bool,
    rstrip: bool,
    single_word: bool,
    normalized: Option<bool>,
    special: Option<bool>,
    /// Given as an `AddedToken` object (not a plain string): when it is a
    /// special token, its flags replace those of an existing added token of
    /// the same content (transformers re-adds AddedToken objects).
    object: bool,
}

impl TokenSpec {
    fn plain(content: &str) -> Self {
        TokenSpec {
            content: content.to_owned(),
            lstrip: false,
            rstrip: false,
            single_word: false,
            normalized: None,
            special: None,
            object: false,
        }
    }
}

/// The special-token attributes, in transformers' `SPECIAL_TOKENS_ATTRIBUTES`
/// order (without `additional_special_tokens`).
const SPECIAL_KEYS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

struct JsonObject {
    path: PathBuf,
    map: serde_json::Map<String, serde_json::Value>,
}

impl JsonObject {
    fn read(path: PathBuf) -> SpmResult<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = read_file_limited(&path, 64 << 20)?;
        Self::parse(path, &bytes).map(Some)
    }

    /// Parses `bytes` as a JSON object; `path` names it in errors.
    fn parse(path: PathBuf, bytes: &[u8]) -> SpmResult<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| SpmError::Json {
                path: path.clone(),
                source,
            })?;
        match value {
            serde_json::Value::Object(map) => Ok(JsonObject { path, map }),
            _ => Err(SpmError::Config {
                path,
                field: "<root>".into(),
                reason: "expected a JSON object".into(),
            }),
        }
    }

    fn err(&self, field: &str, reason: impl Into<String>) -> SpmError {
        SpmError::Config {
            path: self.path.clone(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// Optional bool (absent or null -> None).
    fn bool(&self, key: &str) -> SpmResult<Option<bool>> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(key, format!("expected a boolean, found {other}"))),
        }
    }

    fn string(&self, key: &str) -> SpmResult<Option<String>> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(key, format!("expected a string, found {other}"))),
        }
    }

    /// A token given as a string or an `AddedToken` object.
    fn token_value(&self, field: &str, v: &serde_json::Value) -> SpmResult<Option<TokenSpec>> {
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(s) => Ok(Some(TokenSpec::plain(s))),
            serde_json::Value::Object(o) => {
                let content = match o.get("content") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => return Err(self.err(field, "token object without a string `content`")),
                };
                let flag =
                    |name: &str| -> SpmResult<Option<bool>> {
                        match o.get(name) {
                            None | Some(serde_json::Value::Null) => Ok(None),
                            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
                            Some(other) => Err(self
                                .err(field, format!("`{name}` must be a boolean, found {other}"))),
                        }
                    };
                Ok(Some(TokenSpec {
                    content,
                    lstrip: flag("lstrip")?.unwrap_or(false),
                    rstrip: flag("rstrip")?.unwrap_or(false),
                    single_word: flag("single_word")?.unwrap_or(false),
                    normalized: flag("normalized")?,
                    special: flag("special")?,
                    object: true,
                }))
            }
            other => Err(self.err(
                field,
                format!("expected a token string or object, found {other}"),
            )),
        }
    }

    fn token(&self, key: &str) -> SpmResult<Option<Option<TokenSpec>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => Ok(Some(self.token_value(key, v)?)),
        }
    }

    fn token_list(&self, key: &str) -> SpmResult<Option<Vec<TokenSpec>>> {
        match self.map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match self.token_value(&format!("{key}[{i}]"), item)? {
                        Some(t) => out.push(t),
                        None => return Err(self.err(key, format!("item {i} is null"))),
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(self.err(key, format!("expected a list, found {other}"))),
        }
    }
}

/// Python `str.isspace()` for one character.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// transformers' `clean_up_tokenization`.
fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// A SentencePiece-based transformers slow tokenizer (`LlamaTokenizer`,
/// `InternLM2Tokenizer`) loaded from a model directory.
#[derive(Clone, Debug)]
pub struct HfSlowTokenizer {
    sp: SentencePiece,
    flavor: SlowTokenizerFlavor,
    legacy: bool,
    add_prefix_space: bool,
    add_bos_token: bool,
    add_eos_token: bool,
    clean_up_tokenization_spaces: bool,
    /// bos, eos, unk, sep, pad, cls, mask (SPECIAL_KEYS order).
    special: [Option<String>; 7],
    additional_special_tokens: Vec<String>,
    /// Added tokens by id (`_added_tokens_decoder`).
    added: HashMap<u32, AddedToken>,
    /// content -> id (`_added_tokens_encoder`).
    added_by_content: HashMap<String, u32>,
    /// Splitting trie over the added tokens' contents (value = id).
    split_trie: PrefixTrie,
    all_special_tokens: Vec<String>,
    all_special_token_set: HashSet<String>,
    all_special_ids: HashSet<u32>,
    /// Tokens `_decode` keeps as separate sub-texts.
    legacy_added_tokens: HashSet<String>,
    /// Non-legacy Llama: number of pieces of `unk_token` alone.
    unk_token_length: usize,
}

impl HfSlowTokenizer {
    /// Loads `tokenizer.model` + `tokenizer_config.json` (+
    /// `special_tokens_map.json`, `added_tokens.json` when present) from `dir`.
    pub fn from_dir(dir: impl AsRef<Path>) -> SpmResult<Self> {
        Self::from_dir_with_options(dir, HfSlowOptions::default())
    }

    /// [`Self::from_dir`] with explicit flavor / legacy overrides.
    pub fn from_dir_with_options(dir: impl AsRef<Path>, options: HfSlowOptions) -> SpmResult<Self> {
        let dir = dir.as_ref();
        let sp = SentencePiece::from_file(dir.join("tokenizer.model"))?;
        let config = JsonObject::read(dir.join("tokenizer_config.json"))?;
        let special_map = JsonObject::read(dir.join("special_tokens_map.json"))?;
        let added_file = dir.join("added_tokens.json");
        let added_json = JsonObject::read(added_file)?;
        Self::build(sp, config, special_map, added_json, options)
    }

    /// Like [`Self::from_dir`] from file contents held in memory (e.g. embedded in a GGUF):
    /// `tokenizer.model` bytes and the optional JSON files by name.
    pub fn from_bytes(
        model: &[u8],
        tokenizer_config: Option<&[u8]>,
        special_tokens_map: Option<&[u8]>,
        added_tokens: Option<&[u8]>,
    ) -> SpmResult<Self> {
        let sp = SentencePiece::from_bytes(model)?;
        let json = |name: &str, b: Option<&[u8]>| {
            b.map(|b| JsonObject::parse(PathBuf::from(name), b))
                .transpose()
        };
        let config = json("tokenizer_config.json", tokenizer_config)?;
        let special_map = json("special_tokens_map.json", special_tokens_map)?;
        let added_json = json("added_tokens.json", added_tokens)?;
        Self::build(
            sp,
            config,
            special_map,
            added_json,
            HfSlowOptions::default(),
        )
    }

    fn build(
        mut sp: SentencePiece,
        config: Option<JsonObject>,
        special_map: Option<JsonObject>,
        added_json: Option<JsonObject>,
        options: HfSlowOptions,
    ) -> SpmResult<Self> {
        let config = config.unwrap_or(JsonObject {
            path: PathBuf::from("tokenizer_config.json"),
            map: serde_json::Map::new(),
        });
        let flavor = match options.flavor {
            Some(f) => f,
            None => match config.string("tokenizer_class")? {
                Some(c) if c.starts_with("InternLM2Tokenizer") => SlowTokenizerFlavor::InternLM2,
                _ => SlowTokenizerFlavor::Llama,
            },
        };

        // --- from_pretrained: special tokens and added tokens (transformers 4.40)
        // `None`: attribute absent; `Some(None)`: explicitly null.
        let mut specials: Vec<Option<Option<TokenSpec>>> = Vec::with_capacity(SPECIAL_KEYS.len());
        for key in SPECIAL_KEYS {
            specials.push(config.token(key)?);
        }
        let mut additional: Vec<TokenSpec> = config
            .token_list("additional_special_tokens")?
            .unwrap_or_default();
        // id -> token, in insertion order of the files.
        let mut decoder: Vec<(u32, TokenSpec)> = Vec::new();
        let has_decoder = matches!(
            config.map.get("added_tokens_decoder"),
            Some(serde_json::Value::Object(_))
        );
        match config.map.get("added_tokens_decoder") {
            Some(serde_json::Value::Object(entries)) => {
                for (k, v) in entries {
                    let field = format!("added_tokens_decoder.{k}");
                    let id: u32 = k
                        .parse()
                        .ok()
                        .filter(|&id| id != u32::MAX)
                        .ok_or_else(|| config.err(&field, "key is not a token id"))?;
                    let Some(tok) = config.token_value(&field, v)? else {
                        return Err(config.err(&field, "null token"));
                    };
                    decoder.push((id, tok));
                }
            }
            Some(serde_json::Value::Null) | None => {
                if let Some(sm) = &special_map {
                    for (i, key) in SPECIAL_KEYS.iter().enumerate() {
                        if let Some(v) = sm.token(key)? {
                            let v = v.map(|mut t| {
                                t.special = Some(true);
                                t
                            });
                            specials[i] = Some(v);
                        }
                    }
                    if let Some(list) = sm.token_list("additional_special_tokens")? {
                        for t in list {
                            if !additional.iter().any(|a| a.content == t.content) {
                                additional.push(t);
                            }
                        }
                    }
                }
                if let Some(aj) = &added_json {
                    let mut special_strings: HashSet<String> = specials
                        .iter()
                        .filter_map(|s| {
                            s.as_ref()
                                .and_then(|t| t.as_ref())
                                .map(|t| t.content.clone())
                        })
                        .collect();
                    special_strings.extend(additional.iter().map(|t| t.content.clone()));
                    for (content, v) in &aj.map {
                        let id = v
                            .as_u64()
                            .filter(|&id| id <= u64::from(u32::MAX - 1))
                            .ok_or_else(|| {
                                aj.err(content, format!("expected a token id, found {v}"))
                            })?;
                        let special = special_strings.contains(content);
                        let mut t = TokenSpec::plain(content);
                        t.normalized = Some(!special);
                        t.special = Some(special);
                        decoder.push((id as u32, t));
                    }
                }
            }
            Some(other) => {
                return Err(config.err(
                    "added_tokens_decoder",
                    format!("expected an object, found {other}"),
                ))
            }
        }
        // Special tokens (not the additional ones) take the AddedToken of the
        // same content from `added_tokens_decoder` (`added_tokens_map`; on the
        // legacy added_tokens.json path transformers 4.40 builds that map
        // with a stale key, so it has no effect there).
        if has_decoder {
            let by_content: HashMap<String, TokenSpec> = decoder
                .iter()
                .map(|(_, t)| (t.content.clone(), t.clone()))
                .collect();
            for s in specials.iter_mut().flatten().flatten() {
                if let Some(t) = by_content.get(&s.content) {
                    *s = t.clone();
                }
            }
        }

        // --- tokenizer __init__
        let default_of = |key: &str| -> Option<&str> {
            match (key, flavor) {
                ("bos_token", _) => Some("<s>"),
                ("eos_token", _) => Some("</s>"),
                ("unk_token", _) => Some("<unk>"),
                ("pad_token", SlowTokenizerFlavor::InternLM2) => Some("</s>"),
                _ => None,
            }
        };
        let special_specs: Vec<Option<TokenSpec>> = SPECIAL_KEYS
            .iter()
            .zip(specials)
            .map(|(key, v)| match v {
                Some(v) => v,
                None => default_of(key).map(TokenSpec::plain),
            })
            .collect();
        let legacy = match flavor {
            SlowTokenizerFlavor::InternLM2 => true,
            SlowTokenizerFlavor::Llama => options.legacy.or(config.bool("legacy")?).unwrap_or(true),
        };
        let add_prefix_space = config.bool("add_prefix_space")?.unwrap_or(true);
        let add_bos_token = config.bool("add_bos_token")?.unwrap_or(true);
        let add_eos_token = config.bool("add_eos_token")?.unwrap_or(false);
        let clean_up_tokenization_spaces = config
            .bool("clean_up_tokenization_spaces")?
            .unwrap_or(false);
        if flavor == SlowTokenizerFlavor::Llama && !legacy {
            sp.set_add_dummy_prefix(false);
        }

        let to_added = |id: u32, t: &TokenSpec, force_special: bool| AddedToken {
            content: t.content.clone(),
            id,
            special: force_special || t.special.unwrap_or(false),
            lstrip: t.lstrip,
            rstrip: t.rstrip,
            single_word: t.single_word,
            normalized: t
                .normalized
                .unwrap_or(!(force_special || t.special.unwrap_or(false))),
        };
        let mut added: HashMap<u32, AddedToken> = HashMap::new();
        let mut added_by_content: HashMap<String, u32> = HashMap::new();
        for (id, t) in &decoder {
            added.insert(*id, to_added(*id, t, false));
        }
        for (id, t) in &decoder {
            added_by_content.insert(t.content.clone(), *id);
        }

        // all_special_tokens_extended, deduplicated by content.
        let mut extended: Vec<TokenSpec> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for t in special_specs.iter().flatten().chain(additional.iter()) {
            if seen.insert(t.content.clone()) {
                extended.push(t.clone());
            }
        }
        // `_add_tokens(..., special_tokens=True)`.
        let mut tok = HfSlowTokenizer {
            sp,
            flavor,
            legacy,
            add_prefix_space,
            add_bos_token,
            add_eos_token,
            clean_up_tokenization_spaces,
            special: Default::default(),
            additional_special_tokens: additional.iter().map(|t| t.content.clone()).collect(),
            added,
            added_by_content,
            split_trie: PrefixTrie::default(),
            all_special_tokens: extended.iter().map(|t| t.content.clone()).collect(),
            all_special_token_set: HashSet::new(),
            all_special_ids: HashSet::new(),
            legacy_added_tokens: HashSet::new(),
            unk_token_length: 0,
        };
        for (slot, spec) in tok.special.iter_mut().zip(&special_specs) {
            *slot = spec.as_ref().map(|t| t.content.clone());
        }
        let mut vocab: HashMap<String, u32> = tok
            .vocab_keys()
            .0
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let new_idx = vocab.len() as u64;
        let mut n_new = 0u64;
        for t in &extended {
            if t.content.is_empty() {
                continue;
            }
            if let Some(&id) = tok.added_by_content.get(&t.content) {
                // Strings already known are skipped; AddedToken objects are
                // re-registered (their flags win), as transformers does.
                if t.object {
                    tok.added.insert(id, to_added(id, t, true));
                }
                continue;
            }
            let id = match vocab.get(t.content.as_str()) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(new_idx + n_new)
                        .map_err(|_| SpmError::InvalidModel("too many added tokens".into()))?;
                    n_new += 1;
                    vocab.insert(t.content.clone(), id);
                    id
                }
            };
            tok.added.insert(id, to_added(id, t, true));
            tok.added_by_content.insert(t.content.clone(), id);
        }
        tok.finish();
        Ok(tok)
    }

    /// Derived tables: split trie, special sets, legacy added tokens.
    fn finish(&mut self) {
        let keys: Vec<(&[u8], u32)> = self
            .added_by_content
            .iter()
            .map(|(k, &v)| (k.as_bytes(), v))
            .collect();
        self.split_trie = PrefixTrie::build(keys);
        self.all_special_token_set = self.all_special_tokens.iter().cloned().collect();
        self.all_special_ids = self
            .all_special_tokens
            .iter()
            .map(|t| self.convert_token_to_id(t))
            .collect();
        let sp_size = self.sp.vocab_size() as u64;
        let mut legacy_added: HashSet<String> = self
            .added_by_content
            .keys()
            .filter(|k| !self.all_special_token_set.contains(*k))
            .cloned()
            .collect();
        for t in &self.additional_special_tokens {
            if u64::from(self.convert_token_to_id(t)) >= sp_size {
                legacy_added.insert(t.clone());
            }
        }
        self.legacy_added_tokens = legacy_added;
        let unk = self.special[2].clone().unwrap_or_else(|| "None".to_owned());
        self.unk_token_length = self.sp.encode(&unk).len();
    }

    /// `get_vocab()` keys: (content -> id, number of distinct keys).
    fn vocab_keys(&self) -> (HashMap<&str, u32>, usize) {
        let mut vocab: HashMap<&str, u32> =
            HashMap::with_capacity(self.sp.vocab_size() + self.added.len());
        for id in 0..self.sp.vocab_size() as u32 {
            let key = match self.added.get(&id) {
                Some(a) => a.content.as_str(),
                None => self.sp.id_to_piece(id).unwrap_or(""),
            };
            vocab.insert(key, id);
        }
        for (content, &id) in &self.added_by_content {
            vocab.insert(content.as_str(), id);
        }
        let n = vocab.len();
        (vocab, n)
    }

    /// `len(tokenizer)`: distinct entries of `get_vocab()` (SentencePiece
    /// pieces plus added tokens beyond them).
    pub fn vocab_len(&self) -> usize {
        self.vocab_keys().1
    }

    /// The underlying SentencePiece model (for non-legacy Llama its
    /// `add_dummy_prefix` is off, as transformers does).
    pub fn sentencepiece(&self) -> &SentencePiece {
        &self.sp
    }

    /// The tokenizer class being reproduced.
    pub fn flavor(&self) -> SlowTokenizerFlavor {
        self.flavor
    }

    /// Llama `legacy` mode (always true for InternLM2).
    pub fn legacy(&self) -> bool {
        self.legacy
    }

    /// Whether `encode(.., true)` prepends BOS.
    pub fn add_bos_token(&self) -> bool {
        self.add_bos_token
    }

    /// Whether `encode(.., true)` appends EOS.
    pub fn add_eos_token(&self) -> bool {
        self.add_eos_token
    }

    /// Added tokens sorted by id.
    pub fn added_tokens(&self) -> Vec<&AddedToken> {
        let mut v: Vec<&AddedToken> = self.added.values().collect();
        v.sort_by_key(|a| a.id);
        v
    }

    /// `all_special_tokens` (bos, eos, unk, sep, pad, cls, mask, additional;
    /// deduplicated).
    pub fn all_special_tokens(&self) -> &[String] {
        &self.all_special_tokens
    }

    /// Whether `id` is one of `all_special_ids`.
    pub fn is_special_id(&self, id: u32) -> bool {
        self.all_special_ids.contains(&id)
    }

    /// `convert_tokens_to_ids` for one token: added tokens first, then the
    /// SentencePiece vocabulary; `None` when neither has it (transformers
    /// would return the unknown id).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added_by_content
            .get(token)
            .copied()
            .or_else(|| self.sp.piece_to_id(token))
    }

    fn convert_token_to_id(&self, token: &str) -> u32 {
        self.token_to_id(token).unwrap_or(self.sp.unk_id())
    }

    /// `convert_ids_to_tokens` for one id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self.added.get(&id) {
            Some(a) => Some(a.content.clone()),
            None => self.sp.id_to_piece(id).map(str::to_owned),
        }
    }

    fn special_token_id(&self, slot: usize) -> Option<u32> {
        self.special[slot]
            .as_deref()
            .map(|t| self.convert_token_to_id(t))
    }

    /// Id of the BOS token (`InternLM2Tokenizer` uses the SentencePiece
    /// `bos_id()`, as its property does).
    pub fn bos_token_id(&self) -> Option<u32> {
        match self.flavor {
            SlowTokenizerFlavor::InternLM2 => self.sp.bos_id(),
            SlowTokenizerFlavor::Llama => self.special_token_id(0),
        }
    }

    /// Id of the EOS token.
    pub fn eos_token_id(&self) -> Option<u32> {
        match self.flavor {
            SlowTokenizerFlavor::InternLM2 => self.sp.eos_id(),
            SlowTokenizerFlavor::Llama => self.special_token_id(1),
        }
    }

    /// Id of the unknown token.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.special_token_id(2)
    }

    /// Id of the padding token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.special_token_id(4)
    }

    /// Splits on added tokens (leftmost, longest match first), as
    /// transformers' `Trie.split`; empty segments are dropped.
    fn split_on_added(&self, text: &str) -> Vec<String> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut seg_start = 0;
        let mut pos = 0;
        while pos < bytes.len() {
            if !text.is_char_boundary(pos) {
                pos += 1;
                continue;
            }
            if let Some((len, _)) = self.split_trie.longest_prefix(&bytes[pos..]) {
                if pos > seg_start {
                    out.push(text[seg_start..pos].to_owned());
                }
                out.push(text[pos..pos + len].to_owned());
                pos += len;
                seg_start = pos;
            } else {
                pos += 1;
            }
        }
        if seg_start < bytes.len() {
            out.push(text[seg_start..].to_owned());
        }
        out
    }

    /// `PreTrainedTokenizer.tokenize` up to `_tokenize`: returns
    /// (token string, id) pairs.
    fn tokenize_pairs(&self, text: &str) -> Vec<(String, u32)> {
        let non_legacy =
            self.flavor == SlowTokenizerFlavor::Llama && !self.legacy && !text.is_empty();
        let text: Cow<str> = if non_legacy {
            let t = text.replace(SPACE_SYMBOL, " ");
            if self.add_prefix_space {
                Cow::Owned(format!("{SPACE_SYMBOL}{t}"))
            } else {
                Cow::Owned(t)
            }
        } else {
            Cow::Borrowed(text)
        };
        let mut chunks = self.split_on_added(&text);
        for i in 0..chunks.len() {
            let Some(&id) = self.added_by_content.get(&chunks[i]) else {
                continue;
            };
            let Some(tok) = self.added.get(&id) else {
                continue;
            };
            if !(tok.lstrip || tok.rstrip || tok.single_word) {
                continue;
            }
            let left = (i > 0).then(|| chunks[i - 1].clone());
            let right = chunks.get(i + 1).cloned();
            if tok.rstrip {
                if let Some(r) = right.as_ref().filter(|r| !r.is_empty()) {
                    chunks[i + 1] = r.trim_start_matches(py_isspace).to_owned();
                }
            }
            if tok.lstrip {
                if let Some(l) = left.as_ref().filter(|l| !l.is_empty()) {
                    chunks[i - 1] = l.trim_end_matches(py_isspace).to_owned();
                }
            }
            if tok.single_word {
                if left
                    .as_ref()
                    .is_some_and(|l| !l.is_empty() && !l.ends_with(' '))
                {
                    let t = std::mem::take(&mut chunks[i]);
                    chunks[i - 1].push_str(&t);
                } else if right
                    .as_ref()
                    .is_some_and(|r| !r.is_empty() && !r.starts_with(' '))
                {
                    let t = std::mem::take(&mut chunks[i]);
                    chunks[i + 1] = format!("{t}{}", chunks[i + 1]);
                }
            }
        }
        let mut out: Vec<(String, u32)> = Vec::new();
        for chunk in chunks {
            if chunk.is_empty() {
                continue;
            }
            if let Some(&id) = self.added_by_content.get(&chunk) {
                out.push((chunk, id));
                continue;
            }
            let pieces =
                if non_legacy && (chunk.starts_with(SPACE_SYMBOL) || chunk.starts_with(' ')) {
                    let unk = self.special[2].as_deref().unwrap_or("None");
                    let mut p = self.sp.encode_with_pieces(&format!("{unk}{chunk}"));
                    if p.len() >= self.unk_token_length {
                        p.drain(..self.unk_token_length);
                    }
                    p
                } else {
                    self.sp.encode_with_pieces(&chunk)
                };
            for (piece, _) in pieces {
                let id = self.convert_token_to_id(&piece);
                out.push((piece, id));
            }
        }
        if non_legacy
            && out.len() > 1
            && out[0].0 == SPACE_SYMBOL
            && self.all_special_token_set.contains(&out[1].0)
        {
            out.remove(0);
        }
        out
    }

    /// `tokenizer.tokenize(text)`: token strings (no BOS/EOS).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.tokenize_pairs(text)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// `tokenizer(text, add_special_tokens=...)["input_ids"]`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        let ids = self.tokenize_pairs(text).into_iter().map(|(_, id)| id);
        if !add_special_tokens {
            return ids.collect();
        }
        let mut out = Vec::new();
        if self.add_bos_token {
            out.extend(self.bos_token_id());
        }
        out.extend(ids);
        if self.add_eos_token {
            out.extend(self.eos_token_id());
        }
        out
    }

    /// `tokenizer.decode(ids, skip_special_tokens=...)` with transformers'
    /// defaults (`spaces_between_special_tokens=True`, the config's
    /// `clean_up_tokenization_spaces`). Out-of-range ids are skipped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let tokens: Vec<String> = ids
            .iter()
            .filter(|id| !(skip_special_tokens && self.all_special_ids.contains(id)))
            .filter_map(|&id| self.id_to_token(id))
            .collect();
        let mut sub_texts: Vec<String> = Vec::new();
        let mut current: Vec<&str> = Vec::new();
        for token in &tokens {
            if self.legacy_added_tokens.contains(token) {
                if !current.is_empty() {
                    let s = self.convert_tokens_to_string(&current);
                    if !s.is_empty() {
                        sub_texts.push(s);
                    }
                    current.clear();
                }
                sub_texts.push(token.clone());
            } else {
                current.push(token);
            }
        }
        if !current.is_empty() {
            sub_texts.push(self.convert_tokens_to_string(&current));
        }
        let text = sub_texts.join(" ");
        if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        }
    }

    /// Like [`Self::decode`] but fails on an id that is neither a
    /// SentencePiece piece nor an added token.
    pub fn try_decode(&self, ids: &[u32], skip_special_tokens: bool) -> SpmResult<String> {
        if let Some(&id) = ids.iter().find(|&&id| self.id_to_token(id).is_none()) {
            return Err(SpmError::IdOutOfRange {
                id,
                vocab_size: self.vocab_len(),
            });
        }
        Ok(self.decode(ids, skip_special_tokens))
    }

    fn convert_tokens_to_string(&self, tokens: &[&str]) -> String {
        match self.flavor {
            SlowTokenizerFlavor::Llama => self.llama_tokens_to_string(tokens),
            SlowTokenizerFlavor::InternLM2 => self.internlm2_tokens_to_string(tokens),
        }
    }

    /// `LlamaTokenizer.convert_tokens_to_string` (4.40).
    fn llama_tokens_to_string(&self, tokens: &[&str]) -> String {
        let mut tokens: Vec<&str> = tokens.to_vec();
        if self.add_prefix_space {
            if let Some(rest) = tokens.first().and_then(|t| t.strip_prefix(SPACE_SYMBOL)) {
                tokens[0] = rest;
            }
        }
        let mut out = String::new();
        let mut current: Vec<&str> = Vec::new();
        let mut prev_is_special = false;
        for (i, &token) in tokens.iter().enumerate() {
            if self.all_special_token_set.contains(token) {
                if !prev_is_special && i != 0 && self.legacy {
                    out.push(' ');
                }
                out.push_str(&self.sp.decode_pieces(&current));
                out.push_str(token);
                prev_is_special = true;
                current.clear();
            } else {
                if prev_is_special
                    && i == 1
                    && self.add_prefix_space
                    && !token.starts_with(SPACE_SYMBOL)
                {
                    out.push(' ');
                }
                current.push(token);
                prev_is_special = false;
            }
        }
        out.push_str(&self.sp.decode_pieces(&current));
        out
    }

    /// `InternLM2Tokenizer.convert_tokens_to_string`: a space before every
    /// special token that does not follow another one, unconditional
    /// `clean_up_tokenization` (its prefix-space step always cancels out).
    fn internlm2_tokens_to_string(&self, tokens: &[&str]) -> String {
        let mut out = String::new();
        let mut current: Vec<&str> = Vec::new();
        let mut prev_is_special = false;
        for &token in tokens {
            if self.all_special_token_set.contains(token) {
                if !prev_is_special {
                    out.push(' ');
                }
                out.push_str(&self.sp.decode_pieces(&current));
                out.push_str(token);
                prev_is_special = true;
                current.clear();
            } else {
                current.push(token);
                prev_is_special = false;
            }
        }
        out.push_str(&self.sp.decode_pieces(&current));
        clean_up_tokenization(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(
        model_type: ModelType,
        pieces: &[(&str, f32, PieceType)],
        add_dummy_prefix: bool,
    ) -> SentencePiece {
        let mut proto = ModelProto::default();
        proto.trainer_spec.model_type = model_type;
        proto.trainer_spec.byte_fallback = pieces.iter().any(|p| p.2 == PieceType::Byte);
        proto.normalizer_spec.add_dummy_prefix = add_dummy_prefix;
        proto.normalizer_spec.remove_extra_whitespaces = false;
        proto.pieces = pieces
            .iter()
            .map(|&(p, score, kind)| ProtoPiece {
                piece: p.to_owned(),
                score,
                kind,
            })
            .collect();
        SentencePiece::from_proto(proto).unwrap()
    }

    fn base_pieces() -> Vec<(&'static str, f32, PieceType)> {
        vec![
            ("<unk>", 0.0, PieceType::Unknown),
            ("<s>", 0.0, PieceType::Control),
            ("</s>", 0.0, PieceType::Control),
        ]
    }

    #[test]
    fn varints() {
        let mut w = Wire::new(&[0x96, 0x01], 0, "t");
        assert_eq!(w.varint().unwrap(), 150);
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(Wire::new(&max, 0, "t").varint().unwrap(), u64::MAX);
        let over = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(Wire::new(&over, 0, "t").varint().is_err());
        assert!(Wire::new(&[0x80], 0, "t").varint().is_err());
        // -1 as int32 is a 10-byte varint.
        assert_eq!(varint_i32(Wire::new(&max, 0, "t").varint().unwrap()), -1);
    }

    #[test]
    fn prefix_trie() {
        let keys: Vec<(&[u8], u32)> =
            vec![(b"a", 1), (b"abc", 2), (b"b", 3), (b"abd", 4), (b"abc", 9)];
        let t = PrefixTrie::build(keys);
        assert_eq!(t.longest_prefix(b"abcd"), Some((3, 2)));
        assert_eq!(t.longest_prefix(b"abx"), Some((1, 1)));
        assert_eq!(t.longest_prefix(b"c"), None);
        let mut seen = Vec::new();
        t.for_each_prefix(b"abd", |len, v| seen.push((len, v)));
        assert_eq!(seen, vec![(1, 1), (3, 4)]);
        assert_eq!(PrefixTrie::build(Vec::new()).longest_prefix(b"a"), None);
    }

    #[test]
    fn utf8_rules() {
        assert_eq!(valid_utf8_prefix("é".as_bytes()), Some(2));
        assert_eq!(valid_utf8_prefix("😀".as_bytes()), Some(4));
        assert_eq!(valid_utf8_prefix(&[0xC0, 0x80]), None); // overlong
        assert_eq!(valid_utf8_prefix(&[0xED, 0xA0, 0x80]), None); // surrogate
        assert_eq!(valid_utf8_prefix(&[0xF4, 0x90, 0x80, 0x80]), None); // > U+10FFFF
        assert_eq!(valid_utf8_prefix(&[0xE2, 0x96]), None); // truncated
                                                            // One replacement character per invalid byte.
        assert_eq!(
            bytes_to_string_per_byte(&[0xE2, 0x96, b'a']),
            "\u{FFFD}\u{FFFD}a"
        );
        assert_eq!(piece_to_byte("<0x0A>"), Some(10));
        assert_eq!(piece_to_byte("<0x0a>"), None);
        assert_eq!(byte_piece_name(255), "<0xFF>");
    }

    #[test]
    fn bpe_ties_go_left_and_unused_pieces_are_resegmented() {
        let mut p = base_pieces();
        p.extend([
            ("a", -10.0, PieceType::Normal),
            ("b", -10.0, PieceType::Normal),
            ("c", -10.0, PieceType::Normal),
            ("ab", -1.0, PieceType::Normal),
            ("ba", -1.0, PieceType::Normal),
            ("bc", 0.0, PieceType::Unused),
            ("abc", -5.0, PieceType::Normal),
        ]);
        let sp = model(ModelType::Bpe, &p, false);
        let id = |s: &str| sp.piece_to_id(s).unwrap();
        // "ab" and "ba" tie: the leftmost pair merges first.
        assert_eq!(sp.encode("aba"), vec![id("ab"), id("a")]);
        // "bc" (UNUSED) merges first, then is split back into b + c.
        assert_eq!(sp.encode("bc"), vec![id("b"), id("c")]);
        assert_eq!(sp.encode_as_pieces("bcb"), vec!["b", "c", "b"]);
        // Unknown characters (no byte fallback) merge into one unk.
        assert_eq!(sp.encode("xyab"), vec![0, id("ab")]);
        assert_eq!(sp.encode_as_pieces("xy"), vec!["xy"]);
        assert_eq!(sp.decode(&sp.encode("xyab")), " \u{2047} ab");
    }

    #[test]
    fn user_defined_symbols_are_frozen() {
        let mut p = base_pieces();
        p.extend([
            ("<x>", 0.0, PieceType::UserDefined),
            ("<", -3.0, PieceType::Normal),
            ("x", -3.0, PieceType::Normal),
            (">", -3.0, PieceType::Normal),
            (">x", -1.0, PieceType::Normal),
            ("\u{2581}", -2.0, PieceType::Normal),
        ]);
        let sp = model(ModelType::Bpe, &p, true);
        let id = |s: &str| sp.piece_to_id(s).unwrap();
        assert_eq!(sp.encode("<x>x"), vec![id("\u{2581}"), id("<x>"), id("x")]);
        assert_eq!(sp.decode(&sp.encode("<x>x")), "<x>x");
    }

    #[test]
    fn byte_fallback_and_decode() {
        let mut p = base_pieces();
        let names: Vec<String> = (0..=255u8).map(byte_piece_name).collect();
        for n in &names {
            p.push((n.as_str(), 0.0, PieceType::Byte));
        }
        p.extend([
            ("\u{2581}", -1.0, PieceType::Normal),
            ("h", -1.0, PieceType::Normal),
            ("i", -1.0, PieceType::Normal),
        ]);
        let sp = model(ModelType::Bpe, &p, true);
        let ids = sp.encode("hé");
        let b = |x: u8| sp.piece_to_id(&byte_piece_name(x)).unwrap();
        assert_eq!(
            ids,
            vec![
                sp.piece_to_id("\u{2581}").unwrap(),
                sp.piece_to_id("h").unwrap(),
                b(0xC3),
                b(0xA9)
            ]
        );
        assert_eq!(sp.decode(&ids), "hé");
        // Control pieces decode to nothing; leading dummy space is removed once.
        let mut with_bos = vec![1];
        with_bos.extend(&ids);
        with_bos.push(2);
        assert_eq!(sp.decode(&with_bos), "hé");
        assert_eq!(sp.decode(&[b(0xC3)]), "\u{FFFD}");
        assert!(sp.try_decode(&[10_000]).is_err());
        assert_eq!(sp.bos_id(), Some(1));
        assert_eq!(sp.eos_id(), Some(2));
        assert_eq!(sp.pad_id(), None);
        assert!(sp.is_byte(b(0)) && sp.is_control(1) && sp.is_unknown(0));
        assert_eq!(sp.byte_value(b(0x41)), Some(0x41));
    }

    #[test]
    fn unigram_viterbi() {
        let mut p = base_pieces();
        p.extend([
            ("a", -2.0, PieceType::Normal),
            ("b", -2.0, PieceType::Normal),
            ("ab", -3.0, PieceType::Normal),
            ("abab", -7.0, PieceType::Normal),
            ("ba", -1.0, PieceType::Unused),
        ]);
        let sp = model(ModelType::Unigram, &p, false);
        let id = |s: &str| sp.piece_to_id(s).unwrap();
        assert_eq!(sp.encode("abab"), vec![id("ab"), id("ab")]);
        assert_eq!(sp.encode("ba"), vec![id("b"), id("a")]);
        assert_eq!(sp.encode("zzab"), vec![0, id("ab")]);
    }

    #[test]
    fn invalid_models_are_rejected() {
        let bad = |pieces: &[(&str, f32, PieceType)], byte_fallback: bool| {
            let mut proto = ModelProto::default();
            proto.trainer_spec.byte_fallback = byte_fallback;
            proto.pieces = pieces
                .iter()
                .map(|&(p, score, kind)| ProtoPiece {
                    piece: p.to_owned(),
                    score,
                    kind,
                })
                .collect();
            SentencePiece::from_proto(proto).unwrap_err().to_string()
        };
        assert!(bad(&[("a", 0.0, PieceType::Normal)], false).contains("unk is not defined"));
        assert!(bad(
            &[
                ("<unk>", 0.0, PieceType::Unknown),
                ("a", 0.0, PieceType::Normal),
                ("a", 0.0, PieceType::Normal)
            ],
            false
        )
        .contains("already defined"));
        assert!(bad(
            &[
                ("<unk>", 0.0, PieceType::Unknown),
                ("", 0.0, PieceType::Normal)
            ],
            false
        )
        .contains("empty"));
        assert!(bad(
            &[
                ("<unk>", 0.0, PieceType::Unknown),
                ("<0x00>", 0.0, PieceType::Byte)
            ],
            false
        )
        .contains("byte_fallback"));
        assert!(bad(
            &[
                ("<unk>", 0.0, PieceType::Unknown),
                ("<0x00>", 0.0, PieceType::Byte)
            ],
            true
        )
        .contains("256"));
    }

    #[test]
    fn clean_up() {
        assert_eq!(
            clean_up_tokenization("a , b . c ? do n't it 's"),
            "a, b. c? don't it's"
        );
        assert!(py_isspace('\u{1f}') && py_isspace('\u{3000}') && !py_isspace('x'));
    }
}
