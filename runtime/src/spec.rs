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
    /// One matrix whose rows are, per KV head `g`, `[q_{g·r} … q_{g·r+r−1}; k_g; v_g]` with
    /// `r = heads / kv_heads` (InternLM2 `wqkv`).
    FusedGrouped,
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
    /// Empty for a stack without a final norm (a pre-decoder).
    pub final_norm: String,
    /// Empty for a stack without an output head (a pre-decoder).
    pub lm_head: String,
    /// Modality experts: a second copy of some per-layer weights, used at image positions.
    pub experts: Option<ExpertNames>,
}

/// Per-layer names (relative to the layer prefix) of the image-position copies of a decoder's
/// weights (EVE v2 `moe_*`, Mono-InternVL `feed_forward_ve`). `None` means the part is shared by
/// both modalities. Attention projections are routed per token but attention itself is shared;
/// rows are routed by the sequence's image positions (generated tokens are text).
#[derive(Debug, Clone, Default)]
pub struct ExpertNames {
    pub attn_norm: Option<String>,
    /// `[q, k, v, o]` (separate layout) or `[qkv, "", "", o]` (fused layouts).
    pub attn: Option<[String; 4]>,
    pub mlp_norm: Option<String>,
    /// `[gate, up, down]` (`gate` empty for MLPs without one).
    pub mlp: Option<[String; 3]>,
}

impl ExpertNames {
    /// The routed parts, for `inspect` (`norms, attention, mlp`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.attn_norm.is_some() || self.mlp_norm.is_some() {
            parts.push("norms");
        }
        if self.attn.is_some() {
            parts.push("attention projections");
        }
        if self.mlp.is_some() {
            parts.push("mlp");
        }
        parts.join(", ")
    }
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
            experts: None,
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
    /// Scale up or down to an area of about `max_size²`, each side rounded up to a multiple
    /// (EVE v2: `r = √(W·H)/max_size`, `W' = max(⌈W/r/m⌉·m, m)` in float64).
    AreaTarget { max_size: u32, multiple: u32 },
    /// Long side exactly `base·scale`; short side `⌈base·short/long/patch⌉·patch·scale` (EVE v1,
    /// `base` = `image_size_clip`, `patch` = `patch_stride_clip`, `scale` = `image_size/base`).
    LongSideFixed { base: u32, patch: u32, scale: u32 },
    /// InternVL dynamic tiling: the `cols × rows` grid (`min..=max` tiles) whose aspect ratio is
    /// closest to the image's, resized to `tile·cols × tile·rows` and cut into tiles row-major,
    /// plus a `tile × tile` thumbnail of the whole image last when there is more than one tile.
    Tiles {
        tile: u32,
        min_tiles: u32,
        max_tiles: u32,
        thumbnail: bool,
    },
}

/// The reference's resampler, with Pillow semantics. Pillow <= 12 always resizes horizontally
/// first; Pillow 13 runs the vertical pass first when the height shrinks by more than twice the
/// width, which moves pixels by a few levels, so the release of the reference matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleFilter {
    /// Pillow <= 12 BILINEAR.
    Bilinear,
    /// Pillow <= 12 BICUBIC.
    Bicubic,
    /// Pillow >= 13 BILINEAR.
    BilinearPillow13,
    /// Pillow >= 13 BICUBIC.
    BicubicPillow13,
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

/// A `[out, in, k, k]` convolution with kernel = stride (a Linear over CHW patches).
#[derive(Debug, Clone)]
pub struct ConvNames {
    pub weight: String,
    pub bias: Option<String>,
}

/// `Linear → erf-GELU → Linear`, both with bias, optionally after a LayerNorm (`mlp2x_gelu`,
/// InternVL `mlp1`, HoVLE `pixel_shuffle_proj`).
#[derive(Debug, Clone)]
pub struct MlpNames {
    pub norm: Option<String>,
    pub fc1: String,
    pub fc2: String,
}

/// One single-query cross-attention of the EVE v1 vision tokenizer: `q = Linear(LN(x))`,
/// `[k|v] = Linear(LN(keys))`, output `proj(attn)` (with bias).
#[derive(Debug, Clone)]
pub struct CrossAttnNames {
    pub q_norm: String,
    pub q: String,
    pub kv_norm: String,
    pub kv: String,
    pub proj: String,
}

// Built once per model at load: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum FrontendSpec {
    /// One Linear over flattened patches (Fuyu with bias, SOLO without).
    LinearPatch {
        weight: String,
        bias: Option<String>,
    },
    /// EVE v2: conv (patch) → erf-GELU → conv 2×2 → learned class vector first and a learned
    /// split vector after every row. No projector.
    DenseConv {
        patch_conv: ConvNames,
        dense_conv: ConvNames,
        class_embedding: String,
        split_embedding: String,
    },
    /// EVE v1: conv (patch, no bias) → 2×2 average pool queried against its 4 unpooled cells
    /// (local cross-attention, residual = pooled) → global cross-attention from the class vector
    /// → `[CLS, row, SPLIT, row, SPLIT, …]` → projector on every vector.
    PooledCrossAttn {
        patch_conv: ConvNames,
        local: CrossAttnNames,
        global: CrossAttnNames,
        /// Heads of both cross-attentions (a constant of the upstream code); scale is `C^-½`.
        heads: usize,
        norm_eps: f64,
        class_embedding: String,
        split_embedding: String,
        projector: MlpNames,
    },
    /// InternVL-style patch model: conv (patch, bias) + learned position table (without its class
    /// row; bicubically resized when the grid differs) → 2×2 pixel shuffle (channels
    /// `(dy, dx, c)`) → MLP. Every tile gives `(g/2)²` rows.
    PixelShuffle {
        patch_conv: ConvNames,
        /// `[1, 1 + G·G, C]`; row 0 belongs to the (unused or dropped) class token.
        position_embedding: String,
        mlp: MlpNames,
        mlp_norm_eps: f64,
    },
    /// HoVLE's holistic embedding: an image front end plus decoder layers (own heads, RoPE, no
    /// final norm, own KV cache) that every position, text and image, passes before the decoder.
    Holistic {
        image: Box<FrontendSpec>,
        layers: Box<DecoderSpec>,
    },
}

impl FrontendSpec {
    /// Short description for `inspect`.
    pub fn describe(&self) -> String {
        match self {
            FrontendSpec::LinearPatch { bias, .. } => format!(
                "linear patch embedding ({})",
                if bias.is_some() { "bias" } else { "no bias" }
            ),
            FrontendSpec::DenseConv { .. } => {
                "conv → GELU → conv 2×2, learned CLS and row-split vectors".into()
            }
            FrontendSpec::PooledCrossAttn { heads, .. } => format!(
                "conv → 2×2 pool with local/global cross-attention ({heads} heads), learned CLS and row-split vectors, MLP projector"
            ),
            FrontendSpec::PixelShuffle { mlp, .. } => format!(
                "conv + position table → 2×2 pixel shuffle → {}MLP",
                if mlp.norm.is_some() { "LayerNorm + " } else { "" }
            ),
            FrontendSpec::Holistic { image, layers } => format!(
                "{}; then {} holistic layers (heads {}/{}, θ {})",
                image.describe(),
                layers.layers,
                layers.heads,
                layers.kv_heads,
                layers.rope_theta
            ),
        }
    }

    /// The decoder layers every position passes before the decoder proper, if any.
    pub fn pre_decoder(&self) -> Option<&DecoderSpec> {
        match self {
            FrontendSpec::Holistic { layers, .. } => Some(layers),
            _ => None,
        }
    }

    /// The part that turns pixels into rows.
    pub fn image(&self) -> &FrontendSpec {
        match self {
            FrontendSpec::Holistic { image, .. } => image.image(),
            other => other,
        }
    }

    /// Patches per output row along each side (2 for the 2×2 conv, pool or pixel shuffle).
    pub fn downsample(&self) -> usize {
        match self.image() {
            FrontendSpec::LinearPatch { .. } => 1,
            _ => 2,
        }
    }

    /// Whether the front end emits a learned vector before the grid (EVE's CLS).
    pub fn learned_cls(&self) -> bool {
        matches!(
            self.image(),
            FrontendSpec::DenseConv { .. } | FrontendSpec::PooledCrossAttn { .. }
        )
    }

    /// Whether the front end emits a learned vector after every row (EVE's split vector).
    pub fn learned_row_end(&self) -> bool {
        self.learned_cls()
    }
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
    /// Image rows replace their placeholders; the reference writes the whole image as one
    /// `sentinel` id that expands to all its rows (EVE's -200).
    Expand { sentinel: i64 },
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
    /// Text with `{prompt}` substituted in which each `marker` (the reference's placeholder
    /// string, e.g. `<image>`) stands for the next image of the turn; a prompt without markers gets
    /// `prefix` once per image first (EVE's and InternVL's `<image>\n`). The chunks between
    /// markers are tokenized separately without special tokens, as the references do.
    TextWithImages {
        text: String,
        marker: String,
        prefix: String,
    },
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
