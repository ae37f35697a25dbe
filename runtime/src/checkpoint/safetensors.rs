//! Memory-mapped safetensors files: a single `model.safetensors` or shards listed in
//! `model.safetensors.index.json`. Headers are validated by the `safetensors` crate (offsets inside
//! the file, no overlap); tensors are decoded on demand from the map.

use super::TensorSource;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

struct MappedFile {
    path: PathBuf,
    map: Mmap,
    data_start: usize,
}

pub struct SafetensorsFiles {
    files: Vec<MappedFile>,
    index: HashMap<String, (usize, TensorInfo)>,
}

impl SafetensorsFiles {
    /// Opens the weights of an HF folder: the shard index if present, else every `*.safetensors`.
    pub fn open_folder(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let paths: Vec<PathBuf> = if index_path.exists() {
            let index = super::read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::config(&index_path, "missing object `weight_map`"))?;
            let mut shards: Vec<String> = Vec::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    Error::config(
                        &index_path,
                        format!("weight_map entry `{tensor}` is not a file name"),
                    )
                })?;
                if file.contains('/') || file.contains('\\') || file.contains("..") {
                    return Err(Error::config(
                        &index_path,
                        format!("shard name `{file}` must be a plain file name"),
                    ));
                }
                if !shards.iter().any(|s| s == file) {
                    shards.push(file.to_string());
                }
            }
            shards.sort();
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            found.sort();
            found
        };
        if paths.is_empty() {
            return Err(Error::config(
                dir,
                "no model.safetensors (or shard index) in the folder",
            ));
        }
        Self::open_files(&paths)
    }

    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in paths {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the file is opened read-only; we never hand out mutable access. A file truncated
            // by another process while mapped can still fault, the usual caveat of every mmap loader.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let (header_len, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|e| Error::Safetensors {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let file_idx = files.len();
            for (name, info) in meta.tensors() {
                index.insert(name, (file_idx, info.clone()));
            }
            files.push(MappedFile {
                path: path.clone(),
                map,
                data_start: 8 + header_len,
            });
        }
        Ok(SafetensorsFiles { files, index })
    }

    fn bytes(&self, name: &str) -> Option<(&[u8], &TensorInfo, &Path)> {
        let (fi, info) = self.index.get(name)?;
        let f = &self.files[*fi];
        let (a, b) = info.data_offsets;
        let bytes = f.map.get(f.data_start + a..f.data_start + b)?;
        Some((bytes, info, &f.path))
    }
}

impl SafetensorsFiles {
    /// Drops the mapped pages of a tensor that has just been copied out, so loading does not hold
    /// the file's pages and the owned weights in memory at the same time (peak RSS ≈ 1× weights).
    fn release(&self, name: &str) {
        #[cfg(unix)]
        if let Some((fi, info)) = self.index.get(name) {
            let f = &self.files[*fi];
            let (a, b) = info.data_offsets;
            // SAFETY: the map is a read-only shared mapping of the file and nothing borrows this
            // range any more (the tensor owns a copy); dropped pages are re-read from the file
            // if they are ever touched again, so the contents seen through the map never change.
            let _ = unsafe {
                f.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    f.data_start + a,
                    b - a,
                )
            };
        }
        #[cfg(not(unix))]
        let _ = name;
    }
}

fn candle_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::U8 => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I64 => DType::I64,
        _ => return None,
    })
}

impl TensorSource for SafetensorsFiles {
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.index.get(name).map(|(_, i)| i.shape.clone())
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let (bytes, info, path) = self.bytes(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            tried: name.to_string(),
        })?;
        let src = candle_dtype(info.dtype).ok_or_else(|| Error::TensorDtype {
            name: name.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let t = Tensor::from_raw_buffer(bytes, src, &info.shape, &Device::Cpu).map_err(|e| {
            Error::Safetensors {
                path: path.to_path_buf(),
                message: format!("tensor `{name}`: {e}"),
            }
        })?;
        let t = if src == dtype { t } else { t.to_dtype(dtype)? };
        let t = t.to_device(device)?;
        self.release(name);
        Ok(t)
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.index.keys().cloned().collect();
        v.sort();
        v
    }

    fn dtype_name(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|(_, i)| format!("{:?}", i.dtype))
    }
}

/// Writes `tensors` (f32, bf16 or f16; moved to the CPU) as one safetensors file with the
/// `{"format": "pt"}` metadata transformers and PEFT expect. Written to a temporary name and
/// renamed, so an interrupted save never leaves a truncated file.
pub fn write_safetensors(
    path: &Path,
    tensors: &std::collections::BTreeMap<String, Tensor>,
) -> Result<()> {
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(&Device::Cpu)?.flatten_all()?;
        let (dtype, bytes): (Dtype, Vec<u8>) = match t.dtype() {
            DType::F32 => (
                Dtype::F32,
                t.to_vec1::<f32>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            DType::BF16 => (
                Dtype::BF16,
                t.to_vec1::<half::bf16>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            DType::F16 => (
                Dtype::F16,
                t.to_vec1::<half::f16>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            other => {
                return Err(Error::TensorDtype {
                    name: name.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let shape = tensors[name].dims().to_vec();
        owned.push((name.clone(), dtype, shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Safetensors {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let tmp = path.with_extension("safetensors.partial");
    safetensors::serialize_to_file(views, Some(meta), &tmp).map_err(|e| Error::Safetensors {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
