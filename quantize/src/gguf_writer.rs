//! A streaming GGUF (version 3) writer: the header — metadata, then every tensor's name, shape,
//! type and offset, all known from the conversion plan — goes out first, then each tensor's blocks
//! as the converter produces them. A conversion holds one tensor at a time, not the whole output
//! (a 7B model at q8_0 is 7 GB).

use crate::{QuantizeError, Result};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use runtime::checkpoint::gguf::ggml_dtype_from_id;
use std::io::Write;
use std::path::Path;

/// Data alignment, also written as `general.alignment`.
pub const ALIGNMENT: u64 = 32;

/// One tensor as the header announces it.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub name: String,
    /// Row-major shape (GGUF stores it innermost first).
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
}

impl PlannedTensor {
    fn bytes(&self) -> Result<u64> {
        let elements = self.shape.iter().map(|&d| d as u64).product::<u64>();
        let block = self.dtype.block_size() as u64;
        if elements % block != 0 {
            return Err(QuantizeError::InvalidArgument(format!(
                "{}: {elements} elements are not a whole number of {block}-element blocks",
                self.name
            )));
        }
        Ok(elements / block * self.dtype.type_size() as u64)
    }
}

/// GGUF's id of a block type: the inverse of the reader's table, so the two cannot disagree.
fn type_id(d: GgmlDType) -> Result<u32> {
    // GGUF's type ids are small numbers (BF16 is 30).
    (0..256)
        .find(|&id| ggml_dtype_from_id(id) == Some(d))
        .ok_or_else(|| QuantizeError::InvalidArgument(format!("no GGUF type id for {d:?}")))
}

/// GGUF's id of a metadata value type.
fn value_type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn padding(pos: u64) -> u64 {
    (ALIGNMENT - pos % ALIGNMENT) % ALIGNMENT
}

/// Counts what goes through it, for offsets and the final check.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Counting<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn string(&mut self, s: &str) -> std::io::Result<()> {
        self.put(&(s.len() as u64).to_le_bytes())?;
        self.put(s.as_bytes())
    }

    fn value(&mut self, v: &Value) -> std::io::Result<()> {
        match v {
            Value::U8(x) => self.put(&[*x]),
            Value::I8(x) => self.put(&x.to_le_bytes()),
            Value::U16(x) => self.put(&x.to_le_bytes()),
            Value::I16(x) => self.put(&x.to_le_bytes()),
            Value::U32(x) => self.put(&x.to_le_bytes()),
            Value::I32(x) => self.put(&x.to_le_bytes()),
            Value::U64(x) => self.put(&x.to_le_bytes()),
            Value::I64(x) => self.put(&x.to_le_bytes()),
            Value::F32(x) => self.put(&x.to_le_bytes()),
            Value::F64(x) => self.put(&x.to_le_bytes()),
            Value::Bool(x) => self.put(&[*x as u8]),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                // An empty array is written as an array of strings (no element to ask).
                let element = items.first().map_or(8, value_type_id);
                self.put(&element.to_le_bytes())?;
                self.put(&(items.len() as u64).to_le_bytes())?;
                for item in items {
                    if value_type_id(item) != element {
                        return Err(std::io::Error::other("a GGUF array mixes value types"));
                    }
                    self.value(item)?;
                }
                Ok(())
            }
        }
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let n = padding(self.written) as usize;
        self.put(&[0u8; ALIGNMENT as usize][..n])
    }
}

/// Writes a GGUF file to `out`: `metadata`, then `tensors` in order, tensor `i`'s data coming
/// from `produce(i)`, which must match its announced type and shape.
/// `path` names the destination in errors.
pub fn write_streaming<W: Write>(
    out: W,
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[PlannedTensor],
    mut produce: impl FnMut(usize) -> Result<QTensor>,
) -> Result<W> {
    let io = |source: std::io::Error| QuantizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut w = Counting {
        inner: out,
        written: 0,
    };
    w.put(b"GGUF").map_err(io)?;
    w.put(&3u32.to_le_bytes()).map_err(io)?;
    w.put(&(tensors.len() as u64).to_le_bytes()).map_err(io)?;
    w.put(&(metadata.len() as u64).to_le_bytes()).map_err(io)?;
    for (key, value) in metadata {
        w.string(key).map_err(io)?;
        w.put(&value_type_id(value).to_le_bytes()).map_err(io)?;
        w.value(value).map_err(io)?;
    }
    let mut offset = 0u64;
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        w.string(&t.name).map_err(io)?;
        w.put(&(t.shape.len() as u32).to_le_bytes()).map_err(io)?;
        for &d in t.shape.iter().rev() {
            w.put(&(d as u64).to_le_bytes()).map_err(io)?;
        }
        w.put(&type_id(t.dtype)?.to_le_bytes()).map_err(io)?;
        w.put(&offset.to_le_bytes()).map_err(io)?;
        let bytes = t.bytes()?;
        sizes.push(bytes);
        offset += bytes + padding(bytes);
    }
    w.pad().map_err(io)?;
    let data_start = w.written;
    for (i, (t, &size)) in tensors.iter().zip(&sizes).enumerate() {
        let q = produce(i)?;
        if q.dtype() != t.dtype || q.shape().dims() != t.shape.as_slice() {
            return Err(QuantizeError::InvalidArgument(format!(
                "{}: produced {:?} {:?}, announced {:?} {:?}",
                t.name,
                q.dtype(),
                q.shape().dims(),
                t.dtype,
                t.shape
            )));
        }
        let data = q.data()?;
        if data.len() as u64 != size {
            return Err(QuantizeError::InvalidArgument(format!(
                "{}: {} bytes of data, announced {size}",
                t.name,
                data.len()
            )));
        }
        w.put(&data).map_err(io)?;
        w.pad().map_err(io)?;
    }
    debug_assert_eq!(w.written - data_start, offset);
    Ok(w.inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use runtime::checkpoint::{GgufFile, TensorSource};

    fn planned(name: &str, shape: &[usize], dtype: GgmlDType) -> PlannedTensor {
        PlannedTensor {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
        }
    }

    #[test]
    fn streamed_files_read_back_exactly() {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 64.0, &dev)
            .unwrap()
            .reshape((2, 32))
            .unwrap();
        let b = Tensor::new(&[1.5f32, -2.0, 3.25], &dev).unwrap();
        let tensors = [
            planned("a", &[2, 32], GgmlDType::Q8_0),
            planned("b", &[3], GgmlDType::F32),
        ];
        let metadata = vec![
            (
                "general.alignment".to_string(),
                Value::U32(ALIGNMENT as u32),
            ),
            ("empty".to_string(), Value::Array(vec![])),
            (
                "words".to_string(),
                Value::Array(vec![Value::String("x".into())]),
            ),
        ];
        let path = std::env::temp_dir().join(format!("gguf-writer-{}.gguf", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        write_streaming(file, &path, &metadata, &tensors, |i| {
            let t = if i == 0 { &a } else { &b };
            Ok(QTensor::quantize(t, tensors[i].dtype)?)
        })
        .unwrap();
        let g = GgufFile::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.tensors["a"].shape, vec![2, 32]);
        let back = g.load("b", candle_core::DType::F32, &dev).unwrap();
        assert_eq!(back.to_vec1::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
        let qa = g.load("a", candle_core::DType::F32, &dev).unwrap();
        let err = (qa - &a).unwrap().abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f32>().unwrap() < 0.3);
        assert!(matches!(g.metadata.get("empty"), Some(Value::Array(v)) if v.is_empty()));
    }

    #[test]
    fn a_tensor_that_differs_from_its_announcement_is_refused() {
        let dev = Device::Cpu;
        let t = Tensor::zeros((4,), candle_core::DType::F32, &dev).unwrap();
        let tensors = [planned("w", &[5], GgmlDType::F32)];
        let path = std::path::Path::new("mem.gguf");
        let err = write_streaming(Vec::new(), path, &[], &tensors, |_| {
            Ok(QTensor::quantize(&t, GgmlDType::F32)?)
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("w: produced") && err.contains("announced"),
            "{err}"
        );
        // A shape that is no whole number of blocks cannot even be announced.
        let bad = [planned("q", &[33], GgmlDType::Q8_0)];
        let err = write_streaming(Vec::new(), path, &[], &bad, |_| unreachable!())
            .unwrap_err()
            .to_string();
        assert!(err.contains("32-element blocks"), "{err}");
    }
}
