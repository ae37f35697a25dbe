//! Preflight memory estimates. A model load or a turn that would not fit in memory is refused with
//! the numbers before anything big is allocated, instead of the kernel killing the process halfway
//! (a 100-megapixel photo on a 7B model asks for gigabytes of attention scratch).
//!
//! The budget is `MONOVLM_MEMORY_LIMIT` when set (`8G`, `512M`, `1500000000`), else what the
//! system reports as available (Linux `MemAvailable`) when the model lives in host memory (the
//! CPU, Apple's unified memory, a software or integrated Vulkan adapter). Where neither is known —
//! a CUDA or discrete Vulkan GPU, whose memory is not the host's — nothing is refused: checking
//! GPU weights against host RAM would turn away models that fit the GPU.

use crate::checkpoint::gguf::ggml_dtype_name;
use crate::checkpoint::TensorSource;
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::spec::DecoderSpec;
use candle_core::quantized::GgmlDType;
use candle_core::DType;

/// Environment variable that caps the memory monovlm plans to use.
pub const LIMIT_ENV: &str = "MONOVLM_MEMORY_LIMIT";

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// Where a budget came from, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetSource {
    /// `MONOVLM_MEMORY_LIMIT`.
    Limit,
    /// The operating system's available memory.
    Available,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub source: BudgetSource,
}

/// Parses a size: a whole number of bytes with an optional `K`, `M`, `G` or `T` suffix (powers of
/// 1024; `KiB`/`KB`/`k` spellings accepted).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let bad = || {
        Error::InvalidArgument(format!(
            "{LIMIT_ENV}={text:?}: expected a size like 8G, 512M or 1000000"
        ))
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// A `/proc/meminfo` field (`MemAvailable:`, `MemTotal:`), in bytes.
fn meminfo_field(meminfo: &str, field: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `MemAvailable` from a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo_field(meminfo, "MemAvailable:")
}

/// `(MemTotal, MemAvailable)` from a `/proc/meminfo` text, in bytes (for `monovlm devices`).
pub fn total_and_available(meminfo: &str) -> Option<(u64, u64)> {
    Some((
        meminfo_field(meminfo, "MemTotal:")?,
        mem_available(meminfo)?,
    ))
}

/// The current budget for a model on `device`: the limit variable, else (for a device that
/// computes in host memory) the system's available memory, else `None`.
pub fn budget(device: &ComputeDevice) -> Result<Option<Budget>> {
    let meminfo = || std::fs::read_to_string("/proc/meminfo").ok();
    budget_from(
        std::env::var(LIMIT_ENV).ok().as_deref(),
        uses_host_memory(device),
        meminfo,
    )
}

/// [`budget`] from its inputs: the limit variable's value, whether the device's memory is the
/// host's, and the system's memory report.
fn budget_from(
    limit: Option<&str>,
    host_memory: bool,
    meminfo: impl FnOnce() -> Option<String>,
) -> Result<Option<Budget>> {
    if let Some(v) = limit.filter(|v| !v.trim().is_empty()) {
        return Ok(Some(Budget {
            bytes: parse_size(v)?,
            source: BudgetSource::Limit,
        }));
    }
    if !host_memory {
        return Ok(None);
    }
    Ok(meminfo()
        .and_then(|m| mem_available(&m))
        .map(|bytes| Budget {
            bytes,
            source: BudgetSource::Available,
        }))
}

/// Whether a model on `device` keeps its weights and KV cache in host memory.
fn uses_host_memory(device: &ComputeDevice) -> bool {
    match device {
        // Apple GPUs share the host's memory.
        ComputeDevice::Candle(d) => d.is_cpu() || d.is_metal(),
        #[cfg(feature = "vulkan")]
        ComputeDevice::Vulkan(c) => c.info.is_software() || c.info.is_integrated(),
    }
}

/// Bytes the weights take once loaded: dense tensors in the compute dtype, block-quantized GGUF
/// tensors at their stored size (they stay quantized).
pub fn weights_bytes(source: &dyn TensorSource, compute: DType) -> u64 {
    let mut total = 0u64;
    for name in source.names() {
        let elements = source
            .shape(&name)
            .unwrap_or_default()
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d as u64));
        let quant = source.dtype_name(&name).and_then(|d| quantized_type(&d));
        let bytes = match quant {
            Some(q) => elements / q.block_size() as u64 * q.type_size() as u64,
            None => elements.saturating_mul(compute.size_in_bytes() as u64),
        };
        total = total.saturating_add(bytes);
    }
    total
}

fn quantized_type(name: &str) -> Option<GgmlDType> {
    use GgmlDType::*;
    [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
    ]
    .into_iter()
    .find(|q| ggml_dtype_name(*q) == name)
}

/// What one turn of `new` tokens after `cached` ones adds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnEstimate {
    /// Key/value cache for all `cached + new` positions (with the cache's doubling headroom).
    pub kv_cache: u64,
    /// The largest transient working set of one layer: attention scores and probabilities for
    /// every head, the mask, and the layer's activations.
    pub scratch: u64,
}

impl TurnEstimate {
    pub fn total(&self) -> u64 {
        self.kv_cache.saturating_add(self.scratch)
    }
}

/// Estimates one turn through `decoder` (and a pre-decoder such as HoVLE's, which keeps its own
/// cache) in `dtype`.
pub fn turn_estimate(
    decoder: &DecoderSpec,
    pre: Option<&DecoderSpec>,
    dtype: DType,
    cached: usize,
    new: usize,
) -> TurnEstimate {
    let positions = (cached as u64).saturating_add(new as u64);
    let elem = dtype.size_in_bytes() as u64;
    let one = |d: &DecoderSpec| {
        // The cache grows by doubling: up to twice the positions while a copy is in flight.
        let kv = (d.layers as u64)
            .saturating_mul(2 * d.kv_heads as u64 * d.head_dim as u64)
            .saturating_mul(elem)
            .saturating_mul(positions.max(64).saturating_mul(2));
        let t = new as u64;
        // Scores and probabilities are f32 per head; the mask is T × S.
        let scores = (2 * d.heads as u64 + 1)
            .saturating_mul(t)
            .saturating_mul(positions)
            .saturating_mul(4);
        let width =
            4 * d.hidden as u64 + 3 * d.intermediate as u64 + d.heads as u64 * d.head_dim as u64;
        let activations = t.saturating_mul(width).saturating_mul(elem);
        (kv, scores.saturating_add(activations))
    };
    let (kv, scratch) = one(decoder);
    let (pre_kv, pre_scratch) = pre.map(one).unwrap_or((0, 0));
    TurnEstimate {
        kv_cache: kv.saturating_add(pre_kv),
        scratch: scratch.max(pre_scratch),
    }
}

/// `1.25 GiB`, `340.0 MiB`, `12.0 KiB`: three significant figures or so, in the largest unit
/// that keeps the number at least 1.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn over_budget(what: String, needed: u64, budget: Budget) -> Error {
    let have = match budget.source {
        BudgetSource::Limit => format!("{LIMIT_ENV} allows {}", human(budget.bytes)),
        BudgetSource::Available => format!(
            "only {} is available (set {LIMIT_ENV} to override)",
            human(budget.bytes)
        ),
    };
    Error::OutOfMemory(format!("{what} needs about {} but {have}", human(needed)))
}

/// Refuses loading weights of `bytes` that do not fit the budget.
pub fn check_weights(bytes: u64, parameters: u64, budget: Option<Budget>) -> Result<()> {
    match budget {
        Some(b) if bytes > b.bytes => Err(over_budget(
            format!("loading this model ({parameters} parameters)"),
            bytes,
            b,
        )),
        _ => Ok(()),
    }
}

/// Refuses a turn whose estimate does not fit the budget.
pub fn check_turn(estimate: &TurnEstimate, new: usize, budget: Option<Budget>) -> Result<()> {
    match budget {
        Some(b) if estimate.total() > b.bytes => Err(over_budget(
            format!(
                "this turn ({new} new tokens: KV cache {}, attention and activations {}; a smaller image or a shorter prompt needs less)",
                human(estimate.kv_cache),
                human(estimate.scratch)
            ),
            estimate.total(),
            b,
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size(" 512 MiB ").unwrap(), 512 << 20);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        for bad in ["", "G", "-1G", "1.5G", "12Q", "99999999999999999999T"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains(LIMIT_ENV), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_print_in_the_unit_that_fits() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 10), "3.0 KiB");
        assert_eq!(human(340 << 20), "340.0 MiB");
        assert_eq!(human(5 << 29), "2.50 GiB");
    }

    #[test]
    fn the_budget_is_host_memory_only_where_the_model_lives_there() {
        let meminfo = || Some("MemAvailable:   2000 kB\n".to_string());
        let available = Budget {
            bytes: 2000 * 1024,
            source: BudgetSource::Available,
        };
        // The CPU (and unified-memory devices): the host's available memory.
        assert_eq!(budget_from(None, true, meminfo).unwrap(), Some(available));
        assert_eq!(
            budget_from(Some(" "), true, meminfo).unwrap(),
            Some(available)
        );
        // A GPU with its own memory: host RAM says nothing about it.
        assert_eq!(budget_from(None, false, meminfo).unwrap(), None);
        // The user's limit holds on every device.
        let limit = Budget {
            bytes: 1 << 30,
            source: BudgetSource::Limit,
        };
        assert_eq!(
            budget_from(Some("1G"), false, meminfo).unwrap(),
            Some(limit)
        );
        assert_eq!(budget_from(Some("1G"), true, meminfo).unwrap(), Some(limit));
        assert!(budget_from(Some("lots"), false, meminfo).is_err());
        // No report, no refusal.
        assert_eq!(budget_from(None, true, || None).unwrap(), None);
        assert!(uses_host_memory(&ComputeDevice::Candle(
            candle_core::Device::Cpu
        )));
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(mem_available(m), Some(2000 * 1024));
        assert_eq!(total_and_available(m), Some((24000000 * 1024, 2000 * 1024)));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    fn seven_b() -> DecoderSpec {
        use crate::spec::{DecoderNames, MlpKind, NormKind, QkvLayout};
        DecoderSpec {
            hidden: 4096,
            layers: 32,
            heads: 32,
            kv_heads: 8,
            head_dim: 128,
            intermediate: 14336,
            vocab: 32000,
            norm: NormKind::Rms,
            norm_eps: 1e-5,
            qkv: QkvLayout::Separate,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            mlp: MlpKind::SwiGlu,
            rope_theta: 1e6,
            rotary_dim: 128,
            sliding_window: None,
            max_position: 32768,
            tie_embeddings: false,
            names: DecoderNames::llama("model.", "lm_head.weight"),
        }
    }

    #[test]
    fn a_7b_image_prefill_is_estimated_in_gigabytes() {
        // 2304 image tokens on a Mistral-7B shape, f32: KV per position = 32 layers × 2 × 8 × 128
        // × 4 B = 256 KiB, doubled for growth → 1.125 GiB; scores 65 × 2304² × 4 B ≈ 1.29 GiB.
        let e = turn_estimate(&seven_b(), None, DType::F32, 0, 2304);
        assert_eq!(e.kv_cache, 32 * 2 * 8 * 128 * 4 * 2304 * 2);
        let scores = 65 * 2304u64 * 2304 * 4;
        let acts = 2304u64 * (4 * 4096 + 3 * 14336 + 4096) * 4;
        assert_eq!(e.scratch, scores + acts);
        let small = Budget {
            bytes: 1 << 30,
            source: BudgetSource::Limit,
        };
        let err = check_turn(&e, 2304, Some(small)).unwrap_err().to_string();
        assert!(
            err.contains("2304 new tokens") && err.contains(LIMIT_ENV),
            "{err}"
        );
        let big = Budget {
            bytes: 16 << 30,
            source: BudgetSource::Available,
        };
        check_turn(&e, 2304, Some(big)).unwrap();
        check_turn(&e, 2304, None).unwrap();
    }

    #[test]
    fn decode_steps_cost_little_beyond_the_cache() {
        let prefill = turn_estimate(&seven_b(), None, DType::F32, 0, 2304);
        let step = turn_estimate(&seven_b(), None, DType::F32, 2304, 1);
        assert!(step.scratch * 100 < prefill.scratch);
        assert!(step.kv_cache >= prefill.kv_cache);
    }
}
