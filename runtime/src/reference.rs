//! Golden-fixture checks: runs every case of a folder in the `shared/fixtures` format (cases.json +
//! golden.safetensors produced by the upstream reference) and measures how far we are from it.

use crate::checkpoint::{read_json, SafetensorsFiles, TensorSource};
use crate::error::{Error, Result};
use crate::generate::argmax;
use crate::image::{pilimage, DecodeLimits};
use crate::model::{LoadOptions, Model, PromptFormat};
use candle_core::{DType, Device, IndexOp, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Tolerance on model math fed with the golden pixel values (f32).
pub const MATH_TOL: f32 = 1e-4;
/// Tolerance on pixel values when our resampler is the reference's (or no resize happened).
pub const PIXEL_TOL_EXACT: f32 = 1e-6;

#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    pub name: String,
    pub ids_ok: bool,
    pub positions_ok: bool,
    pub grid_ok: bool,
    /// Max |Δ| of our preprocessing vs the golden pixel values, and the tolerance applied.
    pub pixel_err: Option<(f32, f32)>,
    pub image_embeds_err: Option<f32>,
    pub inputs_embeds_err: Option<f32>,
    pub logits_err: Option<f32>,
    pub hidden_last_err: Option<f32>,
    pub greedy_ok: Option<bool>,
    pub greedy_unsuppressed_ok: Option<bool>,
    pub notes: Vec<String>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        let within = |e: Option<f32>| e.is_none_or(|e| e <= MATH_TOL);
        self.ids_ok
            && self.positions_ok
            && self.grid_ok
            && self.pixel_err.is_none_or(|(e, t)| e <= t)
            && within(self.image_embeds_err)
            && within(self.inputs_embeds_err)
            && within(self.logits_err)
            && within(self.hidden_last_err)
            && self.greedy_ok != Some(false)
            && self.greedy_unsuppressed_ok != Some(false)
    }

    /// One line for the CLI.
    pub fn line(&self) -> String {
        let e = |x: Option<f32>| x.map(|v| format!("{v:.1e}")).unwrap_or_else(|| "-".into());
        let b = |x: bool| if x { "ok" } else { "MISMATCH" };
        format!(
            "{:<28} {} ids={} pos={} grid={} pixel_values={} image_embeds={} inputs_embeds={} logits={} greedy={}{}",
            self.name,
            if self.passed() { "PASS" } else { "FAIL" },
            b(self.ids_ok),
            b(self.positions_ok),
            b(self.grid_ok),
            self.pixel_err
                .map(|(v, t)| format!("{v:.1e}(tol {t:.0e})"))
                .unwrap_or_else(|| "-".into()),
            e(self.image_embeds_err),
            e(self.inputs_embeds_err),
            e(self.logits_err),
            self.greedy_ok.map(b).unwrap_or("-"),
            if self.notes.is_empty() {
                String::new()
            } else {
                format!("  [{}]", self.notes.join("; "))
            }
        )
    }
}

pub struct Fixture {
    pub dir: PathBuf,
    pub cases: Vec<Value>,
    golden: SafetensorsFiles,
}

impl Fixture {
    pub fn open(dir: &Path) -> Result<Self> {
        let cases_path = dir.join("cases.json");
        let cases = read_json(&cases_path)?;
        let cases = cases
            .get("cases")
            .and_then(|c| c.as_array())
            .cloned()
            .ok_or_else(|| Error::config(&cases_path, "missing array `cases`"))?;
        let golden = SafetensorsFiles::open_files(&[dir.join("golden.safetensors")])?;
        Ok(Fixture {
            dir: dir.to_path_buf(),
            cases,
            golden,
        })
    }

    fn tensor(&self, case: &str, what: &str) -> Option<Tensor> {
        let name = format!("{case}.{what}");
        if !self.golden.contains(&name) {
            return None;
        }
        self.golden.load(&name, DType::F32, &Device::Cpu).ok()
    }
}

fn ids(v: Option<&Value>) -> Option<Vec<u32>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_i64().and_then(|i| u32::try_from(i).ok()))
        .collect()
}

fn usizes(v: Option<&Value>) -> Option<Vec<usize>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_u64().map(|i| i as usize))
        .collect()
}

fn max_abs(a: &Tensor, b: &Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        return Ok(f32::INFINITY);
    }
    let d = (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?.abs()?;
    Ok(d.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// Greedy continuation of `n` tokens from a prefilled cache.
fn greedy(model: &Model, embeds: &Tensor, n: usize, suppress: bool) -> Result<Vec<u32>> {
    let mut cache = model.new_cache();
    let h = model.forward(embeds, &mut cache)?;
    let mut logits: Vec<f32> = model
        .decoder
        .logits(&h.i(h.dim(0)? - 1..)?)?
        .flatten_all()?
        .to_vec1()?;
    let mut out = Vec::new();
    for step in 0..n {
        if suppress {
            for r in &model.spec.generation.suppress {
                let end = (r.end as usize).min(logits.len());
                logits
                    .iter_mut()
                    .take(end)
                    .skip(r.start as usize)
                    .for_each(|l| *l = f32::NEG_INFINITY);
            }
        }
        let t = argmax(&logits);
        out.push(t);
        if step + 1 < n {
            let h = model.forward(&model.decoder.embed(&[t])?, &mut cache)?;
            logits = model.decoder.logits(&h)?.flatten_all()?.to_vec1()?;
        }
    }
    Ok(out)
}

/// Loads the fixture's model (or `model_override`) and checks every case.
pub fn check_fixture(
    dir: &Path,
    model_override: Option<&Path>,
    opts: &LoadOptions,
) -> Result<Vec<CaseReport>> {
    let fixture = Fixture::open(dir)?;
    let model_dir = model_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("model"));
    let model = Model::load(&model_dir, opts)?;
    fixture
        .cases
        .iter()
        .map(|c| check_case(&model, &fixture, c))
        .collect()
}

pub fn check_case(model: &Model, fx: &Fixture, case: &Value) -> Result<CaseReport> {
    let name = case
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let mut r = CaseReport {
        name: name.clone(),
        grid_ok: true,
        ..Default::default()
    };
    let prompt = case.get("prompt").and_then(|v| v.as_str()).unwrap_or("");
    let format = match case.get("prompt_format").and_then(|v| v.as_str()) {
        Some("raw") => PromptFormat::Raw,
        _ => PromptFormat::Chat,
    };
    let image_path = case
        .get("image")
        .and_then(|v| v.as_str())
        .map(|p| fx.dir.join(p));
    let dev = model.device().clone();

    // Our own preprocessing from the image file.
    let mut grids = Vec::new();
    let golden_pixels = fx.tensor(&name, "pixel_values");
    if let Some(path) = &image_path {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default())
            .map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
        let grid = model.preprocess(&img)?;
        if let Some(g) = case.get("image_grid") {
            let rows = g.get("rows").and_then(|v| v.as_u64()).map(|v| v as usize);
            let cols = g.get("cols").and_then(|v| v.as_u64()).map(|v| v as usize);
            if rows.is_some_and(|x| x != grid.rows) || cols.is_some_and(|x| x != grid.cols) {
                r.grid_ok = false;
                r.notes
                    .push(format!("grid {}x{} vs {g}", grid.rows, grid.cols));
            }
        }
        if let Some(hw) = usizes(case.get("resized_hw")) {
            if hw != [grid.resized_hw.0, grid.resized_hw.1] {
                r.grid_ok = false;
                r.notes
                    .push(format!("resized {:?} vs {hw:?}", grid.resized_hw));
            }
        }
        if let Some(gp) = &golden_pixels {
            let ours =
                Tensor::from_slice(&grid.patches, (grid.len(), grid.patch_dim), &Device::Cpu)?;
            let resized =
                (grid.resized_hw.1 as u32, grid.resized_hw.0 as u32) != (img.width, img.height);
            let pp = &model.spec.preprocess;
            let tol = if !resized || pp.resample_exact {
                PIXEL_TOL_EXACT
            } else {
                // Two 8-bit steps of a different resampler, in normalized units.
                let min_std = pp.std.iter().cloned().fold(f32::INFINITY, f32::min);
                2.0 * pp.rescale / min_std + PIXEL_TOL_EXACT
            };
            r.pixel_err = Some((max_abs(&ours, gp)?, tol));
        }
        grids.push((grid.rows, grid.cols));
    }

    let parts = model
        .turn_parts(format, true, image_path.is_some())
        .to_vec();
    let seq = model.build_turn(&parts, prompt, &grids)?;
    let want_ids = ids(case.get("input_ids")).unwrap_or_default();
    r.ids_ok = seq.ids == want_ids;
    if !r.ids_ok {
        r.notes.push(format!("ids {:?} vs {:?}", seq.ids, want_ids));
    }
    let want_pos = usizes(case.get("image_token_positions")).unwrap_or_default();
    r.positions_ok = seq.image_positions == want_pos;

    // Model math fed with the golden pixel values and the golden ids.
    let image_embeds = match &golden_pixels {
        Some(p) => {
            let e = model.frontend.forward_patches(&p.to_device(&dev)?)?;
            if let Some(g) = fx.tensor(&name, "image_embeds") {
                r.image_embeds_err = Some(max_abs(&e, &g)?);
            }
            Some(e)
        }
        None => None,
    };
    let golden_seq = crate::sequence::Sequence {
        ids: want_ids,
        image_positions: want_pos,
    };
    let embeds = model.embed_sequence(&golden_seq, image_embeds.as_ref())?;
    if let Some(g) = fx.tensor(&name, "inputs_embeds") {
        r.inputs_embeds_err = Some(max_abs(&embeds, &g)?);
    }
    let mut cache = model.new_cache();
    let hidden = model.forward(&embeds, &mut cache)?;
    if let Some(g) = fx.tensor(&name, "logits") {
        r.logits_err = Some(max_abs(&model.decoder.logits(&hidden)?, &g)?);
    }
    if let Some(g) = fx.tensor(&name, "hidden_last") {
        let last = hidden.i(hidden.dim(0)? - 1)?;
        r.hidden_last_err = Some(max_abs(&last, &g)?);
    }
    if let Some(want) = ids(case.get("greedy_ids")) {
        let got = greedy(model, &embeds, want.len(), true)?;
        r.greedy_ok = Some(got == want);
        if got != want {
            r.notes.push(format!("greedy {got:?} vs {want:?}"));
        }
    }
    if let Some(want) = ids(case.get("greedy_ids_unsuppressed")) {
        let got = greedy(model, &embeds, want.len(), false)?;
        r.greedy_unsuppressed_ok = Some(got == want);
        if got != want {
            r.notes
                .push(format!("unsuppressed greedy {got:?} vs {want:?}"));
        }
    }
    Ok(r)
}
