//! SentencePiece `tokenizer.model` without the C++ library: a bounded protobuf reader, the BPE and
//! Unigram encoders with byte fallback, and transformers' *slow* tokenizer semantics on top
//! (`LlamaTokenizer(legacy=True)` and its SentencePiece-based kin): text is split on added/special
//! tokens and every remaining chunk is encoded on its own, so each gets the dummy prefix.

use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SpmError {
    #[error("malformed tokenizer.model: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Upper bounds that keep a hostile file from allocating without limit.
const MAX_PIECES: usize = 4_000_000;
const MAX_PIECE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
struct Piece {
    text: String,
    score: f32,
    kind: PieceType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelKind {
    Unigram,
    Bpe,
}

/// A loaded SentencePiece model.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    pieces: Vec<Piece>,
    /// Pieces usable in segmentation (normal, user-defined, unused) by text.
    vocab: HashMap<String, u32>,
    /// Every piece by text, for `piece_to_id`.
    all: HashMap<String, u32>,
    user_defined: Vec<String>,
    byte_ids: [Option<u32>; 256],
    kind: ModelKind,
    byte_fallback: bool,
    unk_id: u32,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    min_score: f32,
}

/// Minimal protobuf wire reader over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Skipped,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, SpmError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| {
                SpmError::Malformed(format!("truncated varint at byte {}", self.pos))
            })?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(SpmError::Malformed(format!(
                    "varint overflow at byte {}",
                    self.pos
                )));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(SpmError::Malformed(format!(
            "varint too long at byte {}",
            self.pos
        )))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], SpmError> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|&e| e <= self.buf.len() as u64)
            .ok_or_else(|| {
                SpmError::Malformed(format!(
                    "field of {n} bytes at byte {} runs past the end",
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }

    /// Next `(field number, value)`, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, SpmError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Skipped
            }
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => {
                return Err(SpmError::Malformed(format!(
                    "unsupported wire type {w} at byte {}",
                    self.pos
                )))
            }
        };
        Ok(Some((num, f)))
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, SpmError> {
    if b.len() > MAX_PIECE_BYTES {
        return Err(SpmError::Malformed(format!(
            "{what} longer than {MAX_PIECE_BYTES} bytes"
        )));
    }
    String::from_utf8(b.to_vec()).map_err(|_| SpmError::Malformed(format!("{what} is not UTF-8")))
}

/// `int32` fields are encoded as 64-bit varints; -1 means "none".
fn opt_id(v: u64) -> Option<u32> {
    let v = v as i64 as i32;
    (v >= 0).then_some(v as u32)
}

impl SentencePiece {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SpmError> {
        let mut pieces = Vec::new();
        let mut kind = ModelKind::Unigram;
        let (mut byte_fallback, mut unk, mut bos, mut eos) = (false, 0u64, 1u64, 2u64);
        let (mut dummy, mut remove_ws, mut escape_ws) = (true, true, true);
        let mut norm_name = String::from("identity");
        let mut r = Reader::new(bytes);
        while let Some((num, f)) = r.next()? {
            match (num, f) {
                (1, Field::Bytes(b)) => {
                    if pieces.len() >= MAX_PIECES {
                        return Err(SpmError::Malformed(format!(
                            "more than {MAX_PIECES} pieces"
                        )));
                    }
                    let mut p = Piece {
                        text: String::new(),
                        score: 0.0,
                        kind: PieceType::Normal,
                    };
                    let mut pr = Reader::new(b);
                    while let Some((n, f)) = pr.next()? {
                        match (n, f) {
                            (1, Field::Bytes(s)) => p.text = utf8(s, "piece")?,
                            (2, Field::Fixed32(x)) => p.score = f32::from_bits(x),
                            (3, Field::Varint(t)) => {
                                p.kind = match t {
                                    1 => PieceType::Normal,
                                    2 => PieceType::Unknown,
                                    3 => PieceType::Control,
                                    4 => PieceType::UserDefined,
                                    5 => PieceType::Unused,
                                    6 => PieceType::Byte,
                                    t => {
                                        return Err(SpmError::Malformed(format!(
                                            "unknown piece type {t}"
                                        )))
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    pieces.push(p);
                }
                (2, Field::Bytes(b)) => {
                    let mut tr = Reader::new(b);
                    while let Some((n, f)) = tr.next()? {
                        if let Field::Varint(v) = f {
                            match n {
                                3 => {
                                    kind = match v {
                                        1 => ModelKind::Unigram,
                                        2 => ModelKind::Bpe,
                                        t => {
                                            return Err(SpmError::Unsupported(format!(
                                                "SentencePiece model type {t} (only unigram and BPE are supported)"
                                            )))
                                        }
                                    }
                                }
                                35 => byte_fallback = v != 0,
                                40 => unk = v,
                                41 => bos = v,
                                42 => eos = v,
                                _ => {}
                            }
                        }
                    }
                }
                (3, Field::Bytes(b)) => {
                    let mut nr = Reader::new(b);
                    while let Some((n, f)) = nr.next()? {
                        match (n, f) {
                            (1, Field::Bytes(s)) => norm_name = utf8(s, "normalizer name")?,
                            (3, Field::Varint(v)) => dummy = v != 0,
                            (4, Field::Varint(v)) => remove_ws = v != 0,
                            (5, Field::Varint(v)) => escape_ws = v != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if pieces.is_empty() {
            return Err(SpmError::Malformed("no pieces".into()));
        }
        if norm_name != "identity" {
            return Err(SpmError::Unsupported(format!(
                "SentencePiece normalizer `{norm_name}` (only `identity` is supported)"
            )));
        }
        let mut vocab = HashMap::new();
        let mut all = HashMap::new();
        let mut user_defined = Vec::new();
        let mut byte_ids = [None; 256];
        let mut min_score = f32::INFINITY;
        for (i, p) in pieces.iter().enumerate() {
            let id = i as u32;
            all.entry(p.text.clone()).or_insert(id);
            match p.kind {
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused => {
                    vocab.entry(p.text.clone()).or_insert(id);
                }
                PieceType::Byte => {
                    let hex = p.text.strip_prefix("<0x").and_then(|s| s.strip_suffix('>'));
                    if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        byte_ids[b as usize] = Some(id);
                    }
                }
                _ => {}
            }
            if p.kind == PieceType::UserDefined {
                user_defined.push(p.text.clone());
            }
            if p.kind == PieceType::Normal {
                min_score = min_score.min(p.score);
            }
        }
        // Longest first, so matching takes the longest user-defined symbol.
        user_defined.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let n = pieces.len() as u64;
        let unk_id = opt_id(unk)
            .filter(|&u| (u as u64) < n)
            .ok_or_else(|| SpmError::Malformed("unk_id out of range".into()))?;
        Ok(SentencePiece {
            pieces,
            vocab,
            all,
            user_defined,
            byte_ids,
            kind,
            byte_fallback,
            unk_id,
            bos_id: opt_id(bos).filter(|&b| (b as u64) < n),
            eos_id: opt_id(eos).filter(|&e| (e as u64) < n),
            add_dummy_prefix: dummy,
            remove_extra_whitespaces: remove_ws,
            escape_whitespaces: escape_ws,
            min_score: if min_score.is_finite() {
                min_score
            } else {
                0.0
            },
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.all.get(piece).copied()
    }
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| p.text.as_str())
    }
    pub fn is_control(&self, id: u32) -> bool {
        self.pieces
            .get(id as usize)
            .is_some_and(|p| p.kind == PieceType::Control)
    }

    fn normalize(&self, text: &str) -> String {
        let mut s: String = if self.remove_extra_whitespaces {
            text.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text.to_string()
        };
        if s.is_empty() {
            return s;
        }
        if self.add_dummy_prefix {
            s.insert(0, ' ');
        }
        if self.escape_whitespaces {
            s = s.replace(' ', "\u{2581}");
        }
        s
    }

    /// Splits normalized text into initial symbols: user-defined pieces whole, else characters.
    fn initial_symbols<'t>(&self, s: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            let len = self
                .user_defined
                .iter()
                .find(|u| rest.starts_with(u.as_str()))
                .map(|u| u.len())
                .unwrap_or_else(|| rest.chars().next().map_or(1, char::len_utf8));
            out.push(&s[i..i + len]);
            i += len;
        }
        out
    }

    /// `sp.encode(text)` (ids).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let norm = self.normalize(text);
        if norm.is_empty() {
            return Vec::new();
        }
        let segments: Vec<String> = match self.kind {
            ModelKind::Bpe => self.bpe(&norm),
            ModelKind::Unigram => self.unigram(&norm),
        };
        let mut ids = Vec::with_capacity(segments.len());
        for seg in &segments {
            match self.vocab.get(seg.as_str()) {
                Some(&id) => ids.push(id),
                None if self.byte_fallback => {
                    for b in seg.bytes() {
                        ids.push(self.byte_ids[b as usize].unwrap_or(self.unk_id));
                    }
                }
                None => ids.push(self.unk_id),
            }
        }
        ids
    }

    /// BPE: repeatedly merge the adjacent pair whose concatenation is a piece with the best score
    /// (leftmost on ties); unused pieces formed on the way are split back.
    fn bpe(&self, s: &str) -> Vec<String> {
        #[derive(PartialEq)]
        struct Cand {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl Eq for Cand {}
        impl Ord for Cand {
            fn cmp(&self, o: &Self) -> Ordering {
                self.score
                    .total_cmp(&o.score)
                    .then_with(|| o.left.cmp(&self.left))
            }
        }
        impl PartialOrd for Cand {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        let init = self.initial_symbols(s);
        // Symbols as byte ranges into `s`, in a doubly linked list.
        let mut start: Vec<usize> = Vec::with_capacity(init.len());
        let mut len: Vec<usize> = Vec::with_capacity(init.len());
        let mut off = 0;
        for sym in &init {
            start.push(off);
            len.push(sym.len());
            off += sym.len();
        }
        let n = init.len();
        let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let push =
            |heap: &mut BinaryHeap<Cand>, l: usize, r: usize, start: &[usize], len: &[usize]| {
                let text = &s[start[l]..start[r] + len[r]];
                if let Some(&id) = self.vocab.get(text) {
                    heap.push(Cand {
                        score: self.pieces[id as usize].score,
                        left: l,
                        right: r,
                        len: text.len(),
                    });
                }
            };
        for i in 0..n.saturating_sub(1) {
            push(&mut heap, i, i + 1, &start, &len);
        }
        while let Some(c) = heap.pop() {
            // Stale if either side changed since the candidate was queued.
            if !alive[c.left]
                || !alive[c.right]
                || next[c.left] != Some(c.right)
                || len[c.left] + len[c.right] != c.len
            {
                continue;
            }
            len[c.left] += len[c.right];
            alive[c.right] = false;
            next[c.left] = next[c.right];
            if let Some(nr) = next[c.right] {
                prev[nr] = Some(c.left);
            }
            if let Some(p) = prev[c.left] {
                push(&mut heap, p, c.left, &start, &len);
            }
            if let Some(nx) = next[c.left] {
                push(&mut heap, c.left, nx, &start, &len);
            }
        }
        let mut out = Vec::new();
        let mut i = Some(0).filter(|_| n > 0);
        while let Some(k) = i {
            self.resegment(&s[start[k]..start[k] + len[k]], &mut out);
            i = next[k];
        }
        out
    }

    /// Splits an unused piece back into the best pair of usable pieces (SentencePiece's resegment).
    fn resegment(&self, text: &str, out: &mut Vec<String>) {
        let unused = self
            .vocab
            .get(text)
            .is_some_and(|&id| self.pieces[id as usize].kind == PieceType::Unused);
        if !unused {
            out.push(text.to_string());
            return;
        }
        let mut best: Option<(f32, usize)> = None;
        for (i, _) in text.char_indices().skip(1) {
            let (a, b) = (&text[..i], &text[i..]);
            if let (Some(&ia), Some(&ib)) = (self.vocab.get(a), self.vocab.get(b)) {
                let sc = self.pieces[ia as usize].score + self.pieces[ib as usize].score;
                if best.is_none_or(|(s, _)| sc > s) {
                    best = Some((sc, i));
                }
            }
        }
        match best {
            Some((_, i)) => {
                self.resegment(&text[..i], out);
                self.resegment(&text[i..], out);
            }
            None => out.push(text.to_string()),
        }
    }

    /// Unigram: Viterbi over piece scores; unknown characters cost `min_score - 10`.
    fn unigram(&self, s: &str) -> Vec<String> {
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let n = bounds.len() - 1;
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back = vec![0usize; n + 1];
        best[0] = 0.0;
        let unk_score = self.min_score - 10.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let mut matched_single = false;
            for j in i + 1..=n {
                let piece = &s[bounds[i]..bounds[j]];
                if piece.len() > MAX_PIECE_BYTES {
                    break;
                }
                if let Some(&id) = self.vocab.get(piece) {
                    let p = &self.pieces[id as usize];
                    if p.kind == PieceType::Unused {
                        continue;
                    }
                    let sc = best[i]
                        + if p.kind == PieceType::UserDefined {
                            0.0
                        } else {
                            p.score
                        };
                    if sc > best[j] {
                        best[j] = sc;
                        back[j] = i;
                    }
                    matched_single |= j == i + 1;
                }
            }
            if !matched_single && best[i] + unk_score > best[i + 1] {
                best[i + 1] = best[i] + unk_score;
                back[i + 1] = i;
            }
        }
        let mut out = Vec::new();
        let mut j = n;
        while j > 0 {
            let i = back[j];
            out.push(s[bounds[i]..bounds[j]].to_string());
            j = i;
        }
        out.reverse();
        out
    }

    /// `sp.decode(ids)`: control pieces vanish, bytes are reassembled, the dummy-prefix space is dropped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes: Vec<u8> = Vec::new();
        let mut first = true;
        for &id in ids {
            let Some(p) = self.pieces.get(id as usize) else {
                continue;
            };
            match p.kind {
                PieceType::Control => continue,
                PieceType::Byte => {
                    if let Some(b) = p
                        .text
                        .strip_prefix("<0x")
                        .and_then(|s| s.strip_suffix('>'))
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        bytes.push(b);
                    }
                }
                PieceType::Unknown => bytes.extend(" \u{2047} ".trim().as_bytes()),
                _ => {
                    let mut t = p.text.as_str();
                    if first && self.add_dummy_prefix {
                        t = t.strip_prefix('\u{2581}').unwrap_or(t);
                    }
                    bytes.extend(t.replace('\u{2581}', " ").as_bytes());
                }
            }
            first = false;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// An added/special token of the HF tokenizer files.
#[derive(Debug, Clone)]
struct AddedToken {
    content: String,
    id: u32,
    special: bool,
    lstrip: bool,
    rstrip: bool,
}

/// transformers' slow SentencePiece tokenizer (legacy behaviour) over a [`SentencePiece`] model.
#[derive(Debug, Clone)]
pub struct HfSlowTokenizer {
    sp: SentencePiece,
    /// Longest first, for splitting.
    added: Vec<AddedToken>,
    add_bos: bool,
    add_eos: bool,
}

fn read_json(path: &Path) -> Result<Option<Value>, SpmError> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|e| SpmError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SpmError::File {
            path: path.display().to_string(),
            message: format!("invalid JSON: {e}"),
        })
}

fn token_content(v: &Value) -> Option<(String, bool, bool)> {
    match v {
        Value::String(s) => Some((s.clone(), false, false)),
        Value::Object(o) => Some((
            o.get("content")?.as_str()?.to_string(),
            o.get("lstrip").and_then(Value::as_bool).unwrap_or(false),
            o.get("rstrip").and_then(Value::as_bool).unwrap_or(false),
        )),
        _ => None,
    }
}

impl HfSlowTokenizer {
    pub fn from_dir(dir: &Path) -> Result<Self, SpmError> {
        let model_path = dir.join("tokenizer.model");
        let bytes = std::fs::read(&model_path).map_err(|e| SpmError::File {
            path: model_path.display().to_string(),
            message: e.to_string(),
        })?;
        let sp = SentencePiece::from_bytes(&bytes)?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let special_map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Value::Null);
        let added_json = read_json(&dir.join("added_tokens.json"))?.unwrap_or(Value::Null);
        let mut added: Vec<AddedToken> = Vec::new();
        let mut add = |content: String, id: u32, special: bool, lstrip: bool, rstrip: bool| {
            if content.is_empty() {
                return;
            }
            if let Some(t) = added.iter_mut().find(|t| t.content == content) {
                t.special |= special;
                return;
            }
            added.push(AddedToken {
                content,
                id,
                special,
                lstrip,
                rstrip,
            });
        };
        if let Some(dec) = config
            .get("added_tokens_decoder")
            .and_then(Value::as_object)
        {
            for (id, v) in dec {
                if let (Ok(id), Some((c, l, r))) = (id.parse::<u32>(), token_content(v)) {
                    let special = v.get("special").and_then(Value::as_bool).unwrap_or(true);
                    add(c, id, special, l, r);
                }
            }
        }
        if let Some(map) = added_json.as_object() {
            for (c, id) in map {
                if let Some(id) = id.as_u64().and_then(|i| u32::try_from(i).ok()) {
                    add(c.clone(), id, false, false, false);
                }
            }
        }
        // Named special tokens (strings or objects) from both files; ids from the model when not added.
        for src in [&special_map, &config] {
            let Some(obj) = src.as_object() else { continue };
            for (k, v) in obj {
                let list: Vec<&Value> = if k == "additional_special_tokens" {
                    v.as_array().map(|a| a.iter().collect()).unwrap_or_default()
                } else if k.ends_with("_token") {
                    vec![v]
                } else {
                    vec![]
                };
                for v in list {
                    if let Some((c, l, r)) = token_content(v) {
                        if let Some(id) = sp.piece_to_id(&c) {
                            add(c, id, true, l, r);
                        }
                    }
                }
            }
        }
        added.sort_by_key(|t| std::cmp::Reverse(t.content.len()));
        let flag = |k: &str, d: bool| config.get(k).and_then(Value::as_bool).unwrap_or(d);
        Ok(HfSlowTokenizer {
            add_bos: flag("add_bos_token", true),
            add_eos: flag("add_eos_token", false),
            sp,
            added,
        })
    }

    pub fn sentencepiece(&self) -> &SentencePiece {
        &self.sp
    }

    /// `tokenizer(text, add_special_tokens=...)["input_ids"]`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        if add_special_tokens && self.add_bos {
            ids.extend(self.sp.bos_id());
        }
        let mut rest = text;
        let mut strip_left_next = false;
        while !rest.is_empty() {
            // Earliest added token, longest at that position.
            let hit = self
                .added
                .iter()
                .filter_map(|t| rest.find(t.content.as_str()).map(|p| (p, t)))
                .min_by_key(|(p, t)| (*p, std::cmp::Reverse(t.content.len())));
            let (chunk, tok, after) = match hit {
                Some((p, t)) => (&rest[..p], Some(t), &rest[p + t.content.len()..]),
                None => (rest, None, ""),
            };
            let mut chunk = chunk;
            if strip_left_next {
                chunk = chunk.trim_start();
            }
            if tok.is_some_and(|t| t.lstrip) {
                chunk = chunk.trim_end();
            }
            if !chunk.is_empty() {
                ids.extend(self.sp.encode(chunk));
            }
            match tok {
                Some(t) => {
                    ids.push(t.id);
                    strip_left_next = t.rstrip;
                    rest = after;
                }
                None => break,
            }
        }
        if add_special_tokens && self.add_eos {
            ids.extend(self.sp.eos_id());
        }
        ids
    }

    /// Decodes ids; added tokens are written out unless `skip_special_tokens` drops the special ones.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> String {
        let mut out = String::new();
        let mut run: Vec<u32> = Vec::new();
        for &id in ids {
            match self.added.iter().find(|t| t.id == id) {
                Some(t) => {
                    out.push_str(&self.sp.decode(&run));
                    run.clear();
                    if !(skip_special_tokens && t.special) {
                        out.push_str(&t.content);
                    }
                }
                None => run.push(id),
            }
        }
        out.push_str(&self.sp.decode(&run));
        out
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|t| t.content == token)
            .map(|t| t.id)
            .or_else(|| self.sp.piece_to_id(token))
    }

    /// `len(tokenizer)`: model pieces plus added tokens beyond them.
    pub fn vocab_len(&self) -> usize {
        let extra = self
            .added
            .iter()
            .filter(|t| t.id as usize >= self.sp.vocab_size())
            .count();
        self.sp.vocab_size() + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_models_are_errors_not_panics() {
        assert!(SentencePiece::from_bytes(&[]).is_err());
        assert!(SentencePiece::from_bytes(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(SentencePiece::from_bytes(&[0xff; 11]).is_err());
        // A piece claiming 2^32 bytes.
        assert!(SentencePiece::from_bytes(&[0x0a, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).is_err());
    }
}
