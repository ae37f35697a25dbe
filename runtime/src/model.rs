//! `Model`: a loaded checkpoint (spec, tokenizer, front end, decoder) and the per-turn plumbing:
//! images → patch grids → embeddings, prompt → token sequence, merge into one embedding sequence.

use crate::adapter::Adapters;
use crate::checkpoint::{HfFolder, NameAliases, TensorSource, Weights};
use crate::decoder::{Decoder, Forward, KvCache};
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::families;
use crate::frontend::Frontend;
use crate::image::{self, ImagePlan, PatchGrid, RgbImage};
use crate::memory;
use crate::sequence::{build_turn, ImageSlots, Sequence, Tokenizer};
use crate::spec::{Merge, ModelSpec, Part};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Compute precision of activations and weights (norms, softmax and logits stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDtype {
    F32,
    Bf16,
    F16,
}

impl ComputeDtype {
    pub fn dtype(self) -> DType {
        match self {
            ComputeDtype::F32 => DType::F32,
            ComputeDtype::Bf16 => DType::BF16,
            ComputeDtype::F16 => DType::F16,
        }
    }
}

impl std::str::FromStr for ComputeDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(ComputeDtype::F32),
            "bf16" => Ok(ComputeDtype::Bf16),
            "f16" => Ok(ComputeDtype::F16),
            _ => Err(Error::InvalidArgument(format!(
                "unknown dtype `{s}` (f32, bf16, f16)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: ComputeDtype,
    /// Where the decoder runs (`crate::device::parse_device`).
    pub device: ComputeDevice,
    /// A PEFT LoRA adapter folder applied on top of the weights (unmerged).
    pub lora: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: ComputeDtype::F32,
            device: ComputeDevice::default(),
            lora: None,
        }
    }
}

/// What `inspect` shows about the stored weights.
#[derive(Debug, Clone, Default)]
pub struct WeightStats {
    pub parameters: u64,
    pub tensors: usize,
    /// Storage dtype → number of tensors.
    pub dtypes: BTreeMap<String, usize>,
}

/// Which prompt format a conversation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// The family's instruction/chat format.
    Chat,
    /// Plain completion after the images.
    Raw,
}

/// An image after the family's preprocessing and front end.
pub struct PreparedImage {
    pub grid: PatchGrid,
    /// How the image occupies the sequence.
    pub slots: ImageSlots,
    /// `[N, D]` rows, in sequence order.
    pub embeds: Tensor,
}

pub struct Model {
    pub path: PathBuf,
    pub spec: ModelSpec,
    /// Alternative tensor-name spellings of this family.
    pub aliases: NameAliases,
    pub tokenizer: Tokenizer,
    pub decoder: Decoder,
    pub frontend: Frontend,
    pub stats: WeightStats,
    /// `monovlm.quant_type` of a GGUF file (`f32`, `q8_0`, …); `None` for an HF folder.
    pub quant_type: Option<String>,
    /// Where the decoder runs; rebuilds keep it.
    pub compute: ComputeDevice,
}

impl Model {
    /// Loads an HF checkpoint folder, or a self-contained `.gguf` written by `monovlm quantize`
    /// (block-quantized weights then run as quantized matmuls).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let (folder, tokenizer, quant_type) = if path.is_file() {
            let (folder, file) = HfFolder::open_gguf(path)?;
            let tokenizer = Tokenizer::from_gguf(&file)?;
            let quant_type = file.meta_str("monovlm.quant_type").map(str::to_string);
            (folder, tokenizer, quant_type)
        } else {
            (HfFolder::open(path)?, Tokenizer::from_dir(path)?, None)
        };
        let adapters = match &opts.lora {
            Some(dir) => Some(Adapters::load_peft(dir, &opts.device.host())?),
            None => None,
        };
        let mut model = Model::from_folder(&folder, tokenizer, opts, adapters.as_ref())?;
        model.quant_type = quant_type;
        Ok(model)
    }

    /// Builds a model from an opened folder (whatever holds its tensors) and its tokenizer.
    pub fn from_folder(
        folder: &HfFolder,
        tokenizer: Tokenizer,
        opts: &LoadOptions,
        adapters: Option<&Adapters>,
    ) -> Result<Self> {
        let family = families::detect(folder)?;
        let (spec, aliases) = (family.build)(folder, &tokenizer)?;
        let stats = weight_stats(&folder.tensors);
        memory::check_weights(
            memory::weights_bytes(&folder.tensors, opts.dtype.dtype()),
            stats.parameters,
            memory::budget(&opts.device)?,
        )?;
        let weights = Weights {
            source: &folder.tensors,
            aliases: aliases.clone(),
            dtype: opts.dtype.dtype(),
            device: opts.device.host(),
            adapters,
        };
        let (decoder, frontend) = Self::build_parts(&spec, &weights, &opts.device)?;
        if let Some(a) = adapters {
            // Every adapter module must land on a linear of this model.
            for m in a.modules.keys() {
                if !weights.contains(&format!("{m}.weight")) {
                    return Err(Error::InvalidArgument(format!(
                        "the LoRA adapter targets `{m}`, which this model does not have"
                    )));
                }
            }
        }
        Ok(Model {
            path: folder.dir.clone(),
            spec,
            aliases,
            tokenizer,
            decoder,
            frontend,
            stats,
            quant_type: None,
            compute: opts.device.clone(),
        })
    }

    fn build_parts(
        spec: &ModelSpec,
        weights: &Weights,
        compute: &ComputeDevice,
    ) -> Result<(Decoder, Frontend)> {
        let decoder =
            Decoder::load_on(&spec.decoder, spec.frontend.pre_decoder(), weights, compute)?;
        let patch_dim = spec.preprocess.patch * spec.preprocess.patch * 3;
        #[allow(unused_mut)]
        let mut frontend = Frontend::load(&spec.frontend, weights, patch_dim, spec.decoder.hidden)?;
        #[cfg(feature = "vulkan")]
        if let ComputeDevice::Vulkan(ctx) = compute {
            for linear in frontend.linears_mut() {
                linear.offload(ctx)?;
            }
        }
        Ok((decoder, frontend))
    }

    /// Rebuilds the decoder and front end from `source` (same spec and names), e.g. from a
    /// trainer's current parameters, optionally with LoRA deltas.
    pub fn rebuild(
        &mut self,
        source: &dyn TensorSource,
        dtype: DType,
        adapters: Option<&Adapters>,
    ) -> Result<()> {
        let weights = Weights {
            source,
            aliases: self.aliases.clone(),
            dtype,
            device: self.device().clone(),
            adapters,
        };
        let (decoder, frontend) = Self::build_parts(&self.spec, &weights, &self.compute)?;
        self.decoder = decoder;
        self.frontend = frontend;
        Ok(())
    }

    pub fn device(&self) -> &Device {
        self.decoder.device()
    }

    /// Resized size and grid of an image of `width × height` (for overlays and token budgets).
    pub fn plan_image(&self, width: u32, height: u32) -> Result<ImagePlan> {
        image::plan(&self.spec.preprocess, width, height)
    }

    /// How an image of this plan occupies the sequence: the front end's output grid per tile
    /// (patch grid divided by its 2×2 merge, if any) and its learned markers.
    pub fn image_slots(&self, plan: &ImagePlan) -> ImageSlots {
        let f = &self.spec.frontend;
        let m = f.downsample();
        ImageSlots {
            tiles: plan.tiles,
            rows: plan.rows / m,
            cols: plan.cols / m,
            learned_cls: f.learned_cls(),
            learned_row_end: f.learned_row_end(),
        }
    }

    /// Number of sequence positions one image of this plan occupies.
    pub fn image_token_count(&self, plan: &ImagePlan) -> usize {
        self.image_slots(plan).positions(&self.spec.sequence.layout)
    }

    pub fn preprocess(&self, img: &RgbImage) -> Result<PatchGrid> {
        image::preprocess(&self.spec.preprocess, img)
    }

    /// Preprocesses and embeds one image.
    pub fn prepare_image(&self, img: &RgbImage) -> Result<PreparedImage> {
        let grid = self.preprocess(img)?;
        let embeds = self.frontend.forward(&grid, self.device())?;
        let slots = self.slots_of(&grid);
        if embeds.dim(0)? != slots.rows_out() {
            return Err(Error::Image(format!(
                "the front end produced {} rows for {} image slots",
                embeds.dim(0)?,
                slots.rows_out()
            )));
        }
        Ok(PreparedImage {
            grid,
            slots,
            embeds,
        })
    }

    /// Slots of an already preprocessed image.
    pub fn slots_of(&self, grid: &PatchGrid) -> ImageSlots {
        self.image_slots(&ImagePlan {
            resized_w: grid.resized_hw.1 as u32,
            resized_h: grid.resized_hw.0 as u32,
            rows: grid.rows,
            cols: grid.cols,
            tiles: grid.tiles,
            tile_grid: grid.tile_grid,
            thumbnail: grid.thumbnail,
        })
    }

    /// Template parts for a turn.
    pub fn turn_parts(&self, format: PromptFormat, first_turn: bool, has_images: bool) -> &[Part] {
        let t = &self.spec.sequence.template;
        match (format, first_turn, has_images) {
            (PromptFormat::Raw, _, _) => &t.raw,
            (PromptFormat::Chat, true, true) => &t.chat_with_image,
            (PromptFormat::Chat, true, false) => &t.chat_text_only,
            (PromptFormat::Chat, false, _) => &t.chat_follow_up,
        }
    }

    /// Token sequence of one user turn.
    pub fn build_turn(
        &self,
        parts: &[Part],
        prompt: &str,
        images: &[ImageSlots],
    ) -> Result<Sequence> {
        if images.len() > self.spec.sequence.max_images {
            return Err(Error::InvalidArgument(format!(
                "{} images given; {} takes at most {} per turn",
                images.len(),
                self.spec.family,
                self.spec.sequence.max_images
            )));
        }
        let prompt = if self.spec.sequence.template.strip_prompt {
            prompt.trim()
        } else {
            prompt
        };
        build_turn(
            &self.tokenizer,
            &self.spec.sequence.layout,
            parts,
            prompt,
            images,
        )
    }

    /// Word embeddings of `seq` with the image rows merged in (`image_embeds` concatenated in order).
    pub fn embed_sequence(&self, seq: &Sequence, image_embeds: Option<&Tensor>) -> Result<Tensor> {
        let text = self.decoder.embed(&seq.ids)?;
        let Some(img) = image_embeds else {
            if !seq.image_positions.is_empty() {
                return Err(Error::InvalidArgument(
                    "sequence has image slots but no image embeddings".into(),
                ));
            }
            return Ok(text);
        };
        let n = img.dim(0)?;
        if n != seq.image_positions.len() {
            return Err(Error::InvalidArgument(format!(
                "{n} image rows for {} image slots",
                seq.image_positions.len()
            )));
        }
        let img = img.to_dtype(text.dtype())?;
        let pos: Vec<u32> = seq.image_positions.iter().map(|&p| p as u32).collect();
        let idx = Tensor::new(pos.as_slice(), text.device())?;
        let scattered = text.zeros_like()?.index_add(&idx, &img, 0)?;
        Ok(match self.spec.sequence.merge {
            Merge::Add => (text + scattered)?,
            Merge::Replace | Merge::Expand { .. } => {
                let mut keep = vec![1f32; seq.ids.len()];
                for &p in &seq.image_positions {
                    keep[p] = 0.0;
                }
                let keep = Tensor::from_vec(keep, (seq.ids.len(), 1), text.device())?
                    .to_dtype(text.dtype())?;
                (text.broadcast_mul(&keep)? + scattered)?
            }
        })
    }

    /// Runs text embeddings through the decoder, extending `cache`; returns normed hidden states.
    pub fn forward(&self, embeds: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.decoder.forward_hidden(embeds, cache)
    }

    /// Like [`Model::forward`] for embeddings whose rows `image_positions` hold image rows (they
    /// take the modality experts where the decoder has them).
    pub fn forward_with_images(
        &self,
        embeds: &Tensor,
        image_positions: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        Ok(self
            .decoder
            .forward_routed(embeds, image_positions, cache, false)?
            .hidden)
    }

    /// [`Model::forward_with_images`] that also returns the pre-decoder's output (for checks).
    pub fn forward_full(
        &self,
        embeds: &Tensor,
        image_positions: &[usize],
        cache: &mut KvCache,
    ) -> Result<Forward> {
        self.decoder
            .forward_routed(embeds, image_positions, cache, true)
    }

    /// Positions of `seq` that take the modality experts (empty when the decoder has none).
    pub fn expert_positions<'a>(&self, seq: &'a Sequence) -> &'a [usize] {
        if self.decoder.has_experts() {
            &seq.image_positions
        } else {
            &[]
        }
    }

    pub fn new_cache(&self) -> KvCache {
        self.decoder.new_cache()
    }
}

fn weight_stats(src: &dyn TensorSource) -> WeightStats {
    let mut s = WeightStats::default();
    for name in src.names() {
        let shape = src.shape(&name).unwrap_or_default();
        s.parameters += shape.iter().map(|&d| d as u64).product::<u64>();
        s.tensors += 1;
        *s.dtypes
            .entry(src.dtype_name(&name).unwrap_or_default())
            .or_default() += 1;
    }
    s
}
