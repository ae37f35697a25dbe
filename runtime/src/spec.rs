//! `ModelSpec`: everything family-specific, as data. Computed once at load from the checkpoint's config
//! files (see `families/`); the hot path never matches on family names.

use std::ops::Range;

/// A family's full description: decoder knobs, image pipeline, front end, token layout, template.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Family name as shown to users (`fuyu`, `solo`, …).
    pub family: &'static str,
    pub decoder: DecoderSpec,
    pub preprocess: PreprocessSpec,
    pub frontend: FrontendSpec,
    pub sequence: SequenceSpec,
    pub generation: GenerationSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// RMSNorm with a weight.
    Rms,
    /// LayerNorm with weight and bias.
    LayerNorm,
}

/// How Q, K and V are stored in the checkpoint. Fused layouts are split once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// `q_proj`, `k_proj`, `v_proj`.
    Separate,
    /// One matrix whose rows are, per head, `[q_h; k_h; v_h]` (Persimmon `query_key_value`).
    FusedPerHead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `down(silu(gate(x)) * up(x))`.
    SwiGlu,
    /// `down(relu(up(x))^2)` (Persimmon).
    Relu2,
}

/// Tensor names of one decoder, relative to the checkpoint root. `{i}` in `layer` is the layer index.
#[derive(Debug, Clone)]
pub struct DecoderNames {
    pub embed: String,
    pub layer: String,
    pub attn_norm: String,
    pub q: String,
    pub k: String,
    pub v: String,
    pub qkv: String,
    pub o: String,
    pub q_norm: String,
    pub k_norm: String,
    pub mlp_norm: String,
    pub gate: String,
    pub up: String,
    pub down: String,
    pub final_norm: String,
    pub lm_head: String,
}

impl DecoderNames {
    /// Llama/Mistral/Qwen2 names under `prefix` (e.g. `model.`), with `lm_head` at `lm_head`.
    pub fn llama(prefix: &str, lm_head: &str) -> Self {
        DecoderNames {
            embed: format!("{prefix}embed_tokens.weight"),
            layer: format!("{prefix}layers.{{i}}."),
            attn_norm: "input_layernorm".into(),
            q: "self_attn.q_proj".into(),
            k: "self_attn.k_proj".into(),
            v: "self_attn.v_proj".into(),
            qkv: String::new(),
            o: "self_attn.o_proj".into(),
            q_norm: String::new(),
            k_norm: String::new(),
            mlp_norm: "post_attention_layernorm".into(),
            gate: "mlp.gate_proj".into(),
            up: "mlp.up_proj".into(),
            down: "mlp.down_proj".into(),
            final_norm: format!("{prefix}norm"),
            lm_head: lm_head.into(),
        }
    }

    pub fn layer_prefix(&self, i: usize) -> String {
        self.layer.replace("{i}", &i.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct DecoderSpec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub qkv: QkvLayout,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Per-head LayerNorm on q and k before RoPE, one `[head_dim]` norm shared by all heads.
    pub qk_norm: bool,
    pub mlp: MlpKind,
    pub rope_theta: f64,
    /// Leading dims of each head that are rotated (half-split style); the rest pass through.
    pub rotary_dim: usize,
    /// Key j is visible from query i iff `0 <= i - j <= window` (transformers 4.4x eager semantics).
    pub sliding_window: Option<usize>,
    pub max_position: usize,
    pub tie_embeddings: bool,
    pub names: DecoderNames,
}

/// How an image's size is chosen before patching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizePolicy {
    /// Downscale (never upscale) to fit within `max_w × max_h`, truncating sizes (Fuyu).
    FitWithin { max_w: u32, max_h: u32 },
    /// Long side rounded up to a multiple and capped; short side by SOLO's rule with its `int()`.
    LongSideRoundUp { multiple: u32, cap: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleFilter {
    Bilinear,
    Bicubic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOrder {
    /// `(py, px, c)`, channel fastest (Fuyu).
    Hwc,
    /// `(c, py, px)`, channel slowest (SOLO, conv front ends).
    Chw,
}

#[derive(Debug, Clone)]
pub struct PreprocessSpec {
    pub resize: ResizePolicy,
    pub filter: ResampleFilter,
    /// True when our resampler reproduces the reference's bit for bit (Pillow); false where the
    /// reference used another resampler (torchvision tensors) and ±2 LSB differences are expected.
    pub resample_exact: bool,
    pub patch: usize,
    pub order: PatchOrder,
    /// Pad value in 0..255 units applied bottom/right up to the next multiple of the patch size.
    pub pad_value: Option<f32>,
    pub rescale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone)]
pub enum FrontendSpec {
    /// One Linear over flattened patches (Fuyu with bias, SOLO without).
    LinearPatch {
        weight: String,
        bias: Option<String>,
    },
}

/// How the patch grid becomes token ids.
#[derive(Debug, Clone)]
pub struct ImageLayout {
    pub start: Option<u32>,
    pub patch: u32,
    pub row_sep: Option<u32>,
    pub row_sep_after_last: bool,
    pub end: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Image rows replace the placeholder embeddings.
    Replace,
    /// Image rows are added to the placeholder embeddings.
    Add,
}

/// One piece of a prompt template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// The images of this turn, each laid out by [`ImageLayout`].
    Images,
    /// A token given by its string, looked up in the vocabulary at load.
    Token(u32),
    /// Text with `{prompt}` substituted, tokenized without the tokenizer's own special tokens.
    Text(String),
    /// Text tokenized with the tokenizer's special tokens (its BOS/post-processor).
    TextWithSpecials(String),
}

/// Prompt formats of a family. `chat` is the format the model was tuned on; `raw` is plain completion.
#[derive(Debug, Clone)]
pub struct TemplateSpec {
    /// First user turn with at least one image.
    pub chat_with_image: Vec<Part>,
    /// First user turn without images.
    pub chat_text_only: Vec<Part>,
    /// Later user turns (the previous answer is already in the cache).
    pub chat_follow_up: Vec<Part>,
    /// Appended after an assistant answer when the conversation continues.
    pub assistant_end: Vec<Part>,
    /// Raw completion: images then the text.
    pub raw: Vec<Part>,
    /// Trim whitespace around the user's text first (SOLO's SFT code calls `.strip()`).
    pub strip_prompt: bool,
}

#[derive(Debug, Clone)]
pub struct SequenceSpec {
    pub layout: ImageLayout,
    pub merge: Merge,
    pub template: TemplateSpec,
    pub max_images: usize,
}

#[derive(Debug, Clone)]
pub struct GenerationSpec {
    pub stop_ids: Vec<u32>,
    /// Logit ranges masked to -inf during generation (SOLO masks its added tokens).
    pub suppress: Vec<Range<u32>>,
}
