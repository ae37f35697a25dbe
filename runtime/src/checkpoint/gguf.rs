//! A memory-mapped GGUF file written by `monovlm quantize`: the header is parsed by our own reader
//! (every count, length, dimension and offset is bounded by the file size with checked arithmetic,
//! so a malformed file gives an error naming the problem, never a panic or a huge allocation), and
//! tensors are decoded on demand from the map. Dense tensors (f32/f16/bf16) load as candle tensors;
//! block-quantized ones are also handed out as [`QTensor`]s for quantized matmuls.
//!
//! The checkpoint's original JSON/tokenizer files are stored as `monovlm.file.<name>` metadata
//! (strings, or u8 arrays for binary files), so the file runs without the HF folder.

use super::TensorSource;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Metadata key prefix of the embedded checkpoint files.
pub const FILE_KEY_PREFIX: &str = "monovlm.file.";
/// Largest number of tensor dimensions GGUF allows.
const MAX_DIMS: usize = 4;
/// Largest nesting of metadata arrays we accept.
const MAX_DEPTH: usize = 3;
/// Largest `general.alignment` we accept.
const MAX_ALIGNMENT: u64 = 1 << 20;

/// One tensor's header entry, validated against the file.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub dtype: GgmlDType,
    /// Row-major shape (GGUF stores the innermost dimension first; this is reversed).
    pub shape: Vec<usize>,
    /// Absolute byte range of the data in the file.
    pub start: usize,
    pub len: usize,
}

pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, GgufTensorInfo>,
}

/// GGUF type id → candle's block type (candle keeps its own mapping private).
pub fn ggml_dtype_from_id(id: u32) -> Option<GgmlDType> {
    Some(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Lower-case name of a block type as the CLI spells it (`q4_k`, `f16`, …).
pub fn ggml_dtype_name(d: GgmlDType) -> &'static str {
    match d {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2_k",
        GgmlDType::Q3K => "q3_k",
        GgmlDType::Q4K => "q4_k",
        GgmlDType::Q5K => "q5_k",
        GgmlDType::Q6K => "q6_k",
        GgmlDType::Q8K => "q8_k",
    }
}

/// Whether a block type is a quantized one (not a plain float array).
pub fn is_quantized(d: GgmlDType) -> bool {
    !matches!(d, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// A bounds-checked little-endian cursor over the header bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> std::result::Result<[u8; N], String> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit in what is left of the file (`unit` bytes per element at least).
    fn len(&mut self, unit: usize, what: &str) -> std::result::Result<usize, String> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(unit.max(1)))
            .is_some_and(|bytes| bytes <= self.remaining());
        if !fits {
            return Err(format!(
                "{what} {n} at offset {} exceeds the {} bytes left in the file",
                self.pos - 8,
                self.remaining()
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let n = self.len(1, what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not valid UTF-8"))
    }

    fn value(&mut self, ty: u32, depth: usize, key: &str) -> std::result::Result<Value, String> {
        let v = match ty {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("metadata `{key}`: invalid bool byte {b}")),
            },
            8 => Value::String(self.string(&format!("metadata `{key}` string length"))?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("metadata `{key}`: arrays nested too deeply"));
                }
                let elem = self.u32(key)?;
                let unit = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(format!("metadata `{key}`: unknown array element type {t}")),
                };
                let n = self.len(unit, &format!("metadata `{key}` array length"))?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.value(elem, depth + 1, key)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            t => return Err(format!("metadata `{key}`: unknown value type {t}")),
        };
        Ok(v)
    }
}

/// Version, metadata and tensor table of a parsed header.
type Header = (
    u32,
    BTreeMap<String, Value>,
    BTreeMap<String, GgufTensorInfo>,
);

/// Parses and validates a whole GGUF header against `buf` (the full file).
fn parse(buf: &[u8]) -> std::result::Result<Header, String> {
    let mut c = Cursor { buf, pos: 0 };
    let magic = c.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(format!(
            "bad magic {magic:02x?}: not a GGUF file (expected \"GGUF\")"
        ));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "unsupported GGUF version {version} (2 and 3 are read)"
        ));
    }
    // Each tensor entry takes at least 8 (name) + 4 (dims) + 4 (type) + 8 (offset) bytes, each
    // metadata entry at least 8 (key) + 4 (type) + 1 byte.
    let n_tensors = c.len(24, "tensor count")?;
    let n_kv = c.len(13, "metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string("metadata key length")?;
        let ty = c.u32("metadata value type")?;
        let v = c.value(ty, 0, &key)?;
        if metadata.insert(key.clone(), v).is_some() {
            return Err(format!("duplicate metadata key `{key}`"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Value::U32(a)) => *a as u64,
        Some(other) => {
            return Err(format!(
                "general.alignment must be a u32, got {:?}",
                other.value_type()
            ))
        }
    };
    if alignment == 0 || !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
        return Err(format!(
            "general.alignment {alignment} must be a power of two ≤ {MAX_ALIGNMENT}"
        ));
    }
    let alignment = alignment as usize;
    struct Raw {
        name: String,
        dtype: GgmlDType,
        shape: Vec<usize>,
        offset: u64,
    }
    let mut raw = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("tensor name length")?;
        let n_dims = c.u32("tensor dimension count")? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!(
                "tensor `{name}`: {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            ));
        }
        let mut shape = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = c.u64("tensor dimension")?;
            let d = usize::try_from(d)
                .ok()
                .filter(|&d| d > 0 && d <= buf.len().max(1) * 8)
                .ok_or_else(|| format!("tensor `{name}`: absurd dimension {d}"))?;
            shape.push(d);
        }
        shape.reverse();
        let ty = c.u32("tensor type")?;
        let dtype = ggml_dtype_from_id(ty)
            .ok_or_else(|| format!("tensor `{name}`: unknown tensor type {ty}"))?;
        let offset = c.u64("tensor offset")?;
        raw.push(Raw {
            name,
            dtype,
            shape,
            offset,
        });
    }
    let data_start = c
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or("tensor data offset overflows")?;
    let mut tensors = BTreeMap::new();
    for r in raw {
        let name = r.name;
        let elems = r
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("tensor `{name}`: element count overflows"))?;
        let block = r.dtype.block_size();
        let row = r.shape.last().copied().unwrap_or(1);
        if row % block != 0 {
            return Err(format!(
                "tensor `{name}`: row length {row} is not a multiple of the {} block size {block}",
                ggml_dtype_name(r.dtype)
            ));
        }
        let len = (elems / block)
            .checked_mul(r.dtype.type_size())
            .ok_or_else(|| format!("tensor `{name}`: byte size overflows"))?;
        let offset = usize::try_from(r.offset)
            .ok()
            .filter(|o| o % alignment == 0)
            .ok_or_else(|| {
                format!(
                    "tensor `{name}`: offset {} is not a multiple of the alignment {alignment}",
                    r.offset
                )
            })?;
        let start = data_start
            .checked_add(offset)
            .ok_or_else(|| format!("tensor `{name}`: offset overflows"))?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                format!(
                    "tensor `{name}`: data ({len} bytes at offset {start}) runs past the end of the file ({} bytes)",
                    buf.len()
                )
            })?;
        debug_assert!(end <= buf.len());
        let info = GgufTensorInfo {
            dtype: r.dtype,
            shape: r.shape,
            start,
            len,
        };
        if tensors.insert(name.clone(), info).is_some() {
            return Err(format!("duplicate tensor `{name}`"));
        }
    }
    Ok((version, metadata, tensors))
}

/// Parses and validates a GGUF header held in memory (the whole file), as [`GgufFile::open`]
/// does; for fuzzing and tests. Returns the number of tensors.
pub fn validate(bytes: &[u8]) -> std::result::Result<usize, String> {
    parse(bytes).map(|(_, _, tensors)| tensors.len())
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the file is opened read-only and never written through the map. A file truncated
        // by another process while mapped can still fault, the usual caveat of every mmap loader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (version, metadata, tensors) = parse(&map).map_err(|message| Error::Gguf {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            tensors,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    /// A string metadata value.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// An embedded checkpoint file (`config.json`, `tokenizer.model`, …), if stored.
    pub fn embedded_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.metadata.get(&format!("{FILE_KEY_PREFIX}{name}")) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::U8(b) => Ok(*b),
                    _ => Err(self.err(format!("{FILE_KEY_PREFIX}{name} is not a byte array"))),
                })
                .collect::<Result<Vec<u8>>>()
                .map(Some),
            Some(_) => Err(self.err(format!(
                "{FILE_KEY_PREFIX}{name} is neither a string nor a byte array"
            ))),
        }
    }

    /// A string-array metadata value (`None` when absent).
    fn meta_strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.err(format!("{key} is not an array of strings"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.err(format!("{key} is not an array of strings"))),
        }
    }

    /// Gives the tensors that `monovlm quantize` stored under llama.cpp names
    /// (`blk.0.attn_q.weight`) their checkpoint names back (`model.layers.0.self_attn.q_proj.weight`),
    /// from the file's rename table; a file without one is left as it is. Returns the table.
    pub fn restore_checkpoint_names(&mut self) -> Result<Vec<(String, String)>> {
        use super::llama_names::{read_renames, CHECKPOINT_NAMES_KEY, GGUF_NAMES_KEY};
        let gguf = self.meta_strings(GGUF_NAMES_KEY)?;
        let checkpoint = self.meta_strings(CHECKPOINT_NAMES_KEY)?;
        let renames = match (gguf, checkpoint) {
            (None, None) => return Ok(Vec::new()),
            (Some(g), Some(c)) => read_renames(&g, &c).map_err(|e| self.err(e.to_string()))?,
            _ => {
                return Err(self.err(format!(
                    "{GGUF_NAMES_KEY} and {CHECKPOINT_NAMES_KEY} must be present together"
                )))
            }
        };
        let mut infos = Vec::with_capacity(renames.len());
        for (gguf, _) in &renames {
            let info = self.tensors.remove(gguf).ok_or_else(|| {
                self.err(format!(
                    "the rename table names `{gguf}`, which the file does not hold"
                ))
            })?;
            infos.push(info);
        }
        for ((_, checkpoint), info) in renames.iter().zip(infos) {
            if self.tensors.insert(checkpoint.clone(), info).is_some() {
                return Err(self.err(format!(
                    "the rename table gives a second tensor the name `{checkpoint}`"
                )));
            }
        }
        Ok(renames)
    }

    /// An embedded JSON file, parsed.
    pub fn embedded_json(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let Some(bytes) = self.embedded_file(name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Json {
                path: self.path.join(name),
                message: e.to_string(),
            })
    }

    fn info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            tried: name.to_string(),
        })
    }

    fn bytes(&self, info: &GgufTensorInfo, name: &str) -> Result<&[u8]> {
        let bytes = self
            .map
            .get(info.start..info.start + info.len)
            .ok_or_else(|| self.err(format!("tensor `{name}` lies outside the file")))?;
        // Block structs hold f16/f32 fields; candle reinterprets the bytes in place.
        if !(bytes.as_ptr() as usize).is_multiple_of(4) {
            return Err(self.err(format!("tensor `{name}` data is not 4-byte aligned")));
        }
        Ok(bytes)
    }

    /// The raw block tensor (any type), on `device`.
    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.info(name)?;
        let bytes = self.bytes(info, name)?;
        let q = ggml_file::qtensor_from_ggml(info.dtype, bytes, info.shape.clone(), device)?;
        self.release(info);
        Ok(q)
    }

    /// Drops the mapped pages of a tensor that has just been copied out, so a loaded model does not
    /// keep both the file's pages and its own copy resident.
    fn release(&self, info: &GgufTensorInfo) {
        #[cfg(unix)]
        {
            // SAFETY: a read-only shared mapping of a file; nothing borrows this range any more
            // (the tensor owns a copy), and dropped pages are re-read from the file if touched.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    info.start,
                    info.len,
                )
            };
        }
        #[cfg(not(unix))]
        let _ = info;
    }
}

impl TensorSource for GgufFile {
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|i| i.shape.clone())
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let info = self.info(name)?;
        let bytes = self.bytes(info, name)?;
        let t = match info.dtype {
            GgmlDType::F32 => {
                Tensor::from_raw_buffer(bytes, DType::F32, &info.shape, &Device::Cpu)?
            }
            GgmlDType::F16 => {
                Tensor::from_raw_buffer(bytes, DType::F16, &info.shape, &Device::Cpu)?
            }
            GgmlDType::BF16 => {
                Tensor::from_raw_buffer(bytes, DType::BF16, &info.shape, &Device::Cpu)?
            }
            _ => self.qtensor(name, &Device::Cpu)?.dequantize(&Device::Cpu)?,
        };
        let t = if t.dtype() == dtype {
            t
        } else {
            t.to_dtype(dtype)?
        };
        let t = t.to_device(device)?;
        self.release(info);
        Ok(t)
    }

    fn load_quantized(&self, name: &str, device: &Device) -> Result<Option<QTensor>> {
        match self.tensors.get(name) {
            Some(info) if is_quantized(info.dtype) => self.qtensor(name, device).map(Some),
            _ => Ok(None),
        }
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn dtype_name(&self, name: &str) -> Option<String> {
        self.tensors
            .get(name)
            .map(|i| ggml_dtype_name(i.dtype).to_string())
    }
}
