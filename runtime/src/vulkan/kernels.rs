//! The WGSL kernels: each is a set of shader files (included at compile time) and an entry
//! point. A pipeline is compiled the first time it is used and cached for the device's lifetime.

use super::buffers::WeightType;
use std::collections::HashMap;
use std::sync::Mutex;

const ROWS: &str = include_str!("shaders/rows.wgsl");
const NORM: &str = include_str!("shaders/norm.wgsl");
const ROPE: &str = include_str!("shaders/rope.wgsl");
const ATTENTION_COMMON: &str = include_str!("shaders/attention_common.wgsl");
const ATTENTION: &str = include_str!("shaders/attention.wgsl");
const ATTENTION_TILED: &str = include_str!("shaders/attention_tiled.wgsl");
const ELEMENTWISE: &str = include_str!("shaders/elementwise.wgsl");
const MATMUL_COMMON: &str = include_str!("shaders/matmul_common.wgsl");
const MATVEC: &str = include_str!("shaders/matvec.wgsl");
const MATMAT: &str = include_str!("shaders/matmat.wgsl");

fn weight_decoder(t: WeightType) -> &'static str {
    match t {
        WeightType::F32 => include_str!("shaders/weights_f32.wgsl"),
        WeightType::F16 => include_str!("shaders/weights_f16.wgsl"),
        WeightType::Bf16 => include_str!("shaders/weights_bf16.wgsl"),
        WeightType::Q8_0 => include_str!("shaders/weights_q8_0.wgsl"),
        WeightType::Q4_0 => include_str!("shaders/weights_q4_0.wgsl"),
        WeightType::Q4K => include_str!("shaders/weights_q4_k.wgsl"),
        WeightType::Q6K => include_str!("shaders/weights_q6_k.wgsl"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Gather,
    Scatter,
    RmsNorm,
    LayerNorm,
    Rope,
    /// v1: one workgroup per (head, query); any head dim up to 256.
    Attention,
    /// v2: 8 query rows of one KV head per workgroup, shared K/V tiles; head dims up to 128.
    AttentionTiled,
    SiluMul,
    GeluTanh,
    GeluErf,
    ReluSq,
    Add,
    Mul,
    Scale,
    /// `y = x Wᵀ` for one row of x per workgroup column (decode).
    MatVec(WeightType),
    /// `y = x Wᵀ` in 64×64 shared-memory tiles (prefill).
    MatMat(WeightType),
}

impl Kernel {
    /// WGSL source and entry point.
    fn source(self) -> (String, &'static str) {
        let one = |s: &str, entry| (s.to_string(), entry);
        match self {
            Kernel::Gather => one(ROWS, "gather"),
            Kernel::Scatter => one(ROWS, "scatter"),
            Kernel::RmsNorm => one(NORM, "rms_norm"),
            Kernel::LayerNorm => one(NORM, "layer_norm"),
            Kernel::Rope => one(ROPE, "rope"),
            Kernel::Attention => ([ATTENTION_COMMON, ATTENTION].join("\n"), "attend"),
            Kernel::AttentionTiled => (
                [ATTENTION_COMMON, ATTENTION_TILED].join("\n"),
                "attend_tiled",
            ),
            Kernel::SiluMul => one(ELEMENTWISE, "silu_mul"),
            Kernel::GeluTanh => one(ELEMENTWISE, "gelu_tanh"),
            Kernel::GeluErf => one(ELEMENTWISE, "gelu_erf"),
            Kernel::ReluSq => one(ELEMENTWISE, "relu_sq"),
            Kernel::Add => one(ELEMENTWISE, "add"),
            Kernel::Mul => one(ELEMENTWISE, "mul"),
            Kernel::Scale => one(ELEMENTWISE, "scale"),
            Kernel::MatVec(t) => (
                [MATMUL_COMMON, weight_decoder(t), MATVEC].join("\n"),
                "matvec",
            ),
            Kernel::MatMat(t) => (
                [MATMUL_COMMON, weight_decoder(t), MATMAT].join("\n"),
                "matmat",
            ),
        }
    }
}

/// Compiled pipelines by kernel.
#[derive(Default)]
pub(crate) struct Kernels {
    cache: Mutex<HashMap<Kernel, wgpu::ComputePipeline>>,
}

impl Kernels {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The pipeline of `kernel`, compiled on first use. Shader errors surface through the
    /// device's error slot (the caller's next `check`).
    pub(crate) fn get(&self, device: &wgpu::Device, kernel: Kernel) -> wgpu::ComputePipeline {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(kernel)
            .or_insert_with(|| {
                let (src, entry) = kernel.source();
                let label = format!("{kernel:?}");
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(src.into()),
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .clone()
    }
}
