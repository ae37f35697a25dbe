//! Golden-fixture checks: runs every case of a folder in the `shared/fixtures` format (cases.json +
//! golden.safetensors produced by the upstream reference) and measures how far we are from it.

use crate::checkpoint::{read_json, SafetensorsFiles, TensorSource};
use crate::error::{Error, Result};
use crate::frontend::GridShape;
use crate::generate::greedy_continuation;
use crate::image::{pilimage, DecodeLimits, PatchGrid};
use crate::model::{LoadOptions, Model, PromptFormat};
use crate::sequence::{ImageSlots, Sequence};
use crate::spec::{Merge, PatchOrder, PreprocessSpec};
use candle_core::{DType, Device, IndexOp, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Tolerance on model math fed with the golden pixel values (f32).
pub const MATH_TOL: f32 = 1e-4;
/// Tolerance on pixel values when our resampler is the reference's (or no resize happened).
pub const PIXEL_TOL_EXACT: f32 = 1e-6;

/// How strictly a case is judged. Dense f32 checkpoints must match the golden math within
/// `math` ([`MATH_TOL`]); quantized ones (GGUF f16/bf16/q8_0/…, `min_top1` set) cannot, so their
/// errors are reported and the case passes when the tokenization checks hold and the argmax of
/// the logits agrees with the golden one on at least `min_top1` of the rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub math: f32,
    pub min_top1: Option<f32>,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            math: MATH_TOL,
            min_top1: None,
        }
    }
}

impl Tolerance {
    /// The tolerance for a model whose weights were stored as `quant_type` (`None`: a dense HF
    /// folder). f32 files are held to [`MATH_TOL`]; the others to a floor on the top-1 agreement
    /// over all logits rows of the fixture (f16/bf16 0.98, q8_0 0.95, q6_k/q5_k 0.9, q4_k 0.85,
    /// q4_0 0.6 — set on the tiny random-weight fixtures, whose flat logits make argmax fragile).
    pub fn for_quant_type(quant_type: Option<&str>) -> Self {
        let min_top1 = match quant_type {
            None | Some("f32") => return Tolerance::default(),
            Some("f16" | "bf16") => 0.98,
            Some("q8_0") => 0.95,
            Some("q6_k" | "q5_k") => 0.9,
            Some("q4_k") => 0.85,
            Some(_) => 0.6,
        };
        Tolerance {
            math: MATH_TOL,
            min_top1: Some(min_top1),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    /// How this report is judged.
    pub tolerance: Tolerance,
    /// Rows of the logits whose argmax matches the golden one, and the number of rows.
    pub top1: Option<(usize, usize)>,
    pub name: String,
    pub ids_ok: bool,
    pub positions_ok: bool,
    pub grid_ok: bool,
    /// Rows routed to the modality experts vs the fixture's mask, when it has one.
    pub mask_ok: Option<bool>,
    /// Max |Δ| of our preprocessing vs the golden pixel values, and the tolerance applied.
    pub pixel_err: Option<(f32, f32)>,
    pub image_embeds_err: Option<f32>,
    pub inputs_embeds_err: Option<f32>,
    /// Output of the pre-decoder stack (HoVLE's `holistic_out`).
    pub pre_decoder_err: Option<f32>,
    pub logits_err: Option<f32>,
    pub hidden_last_err: Option<f32>,
    pub greedy_ok: Option<bool>,
    pub greedy_unsuppressed_ok: Option<bool>,
    pub notes: Vec<String>,
}

impl CaseReport {
    /// Fraction of logits rows whose argmax agrees with the golden one.
    pub fn top1_agreement(&self) -> Option<f32> {
        self.top1
            .map(|(a, n)| if n == 0 { 1.0 } else { a as f32 / n as f32 })
    }

    pub fn passed(&self) -> bool {
        let tol = self.tolerance.math;
        let within = |e: Option<f32>| e.is_none_or(|e| e <= tol);
        let inputs_ok = self.ids_ok
            && self.positions_ok
            && self.grid_ok
            && self.mask_ok != Some(false)
            && self.pixel_err.is_none_or(|(e, t)| e <= t);
        if self.tolerance.min_top1.is_some() {
            // Judged over the whole fixture: see [`top1_over`] and [`all_passed`].
            return inputs_ok;
        }
        inputs_ok
            && within(self.image_embeds_err)
            && within(self.inputs_embeds_err)
            && within(self.pre_decoder_err)
            && within(self.logits_err)
            && within(self.hidden_last_err)
            && self.greedy_ok != Some(false)
            && self.greedy_unsuppressed_ok != Some(false)
    }

    /// One line for the CLI.
    pub fn line(&self) -> String {
        let e = |x: Option<f32>| x.map(|v| format!("{v:.1e}")).unwrap_or_else(|| "-".into());
        let b = |x: bool| if x { "ok" } else { "MISMATCH" };
        let mut s = format!(
            "{:<28} {} ids={} pos={} grid={}",
            self.name,
            if self.passed() { "PASS" } else { "FAIL" },
            b(self.ids_ok),
            b(self.positions_ok),
            b(self.grid_ok),
        );
        if let Some(m) = self.mask_ok {
            s.push_str(&format!(" experts={}", b(m)));
        }
        s.push_str(&format!(
            " pixel_values={} image_embeds={} inputs_embeds={}",
            self.pixel_err
                .map(|(v, t)| format!("{v:.1e}(tol {t:.0e})"))
                .unwrap_or_else(|| "-".into()),
            e(self.image_embeds_err),
            e(self.inputs_embeds_err),
        ));
        if let Some(p) = self.pre_decoder_err {
            s.push_str(&format!(" pre_decoder={p:.1e}"));
        }
        s.push_str(&format!(
            " logits={} greedy={}",
            e(self.logits_err),
            self.greedy_ok.map(b).unwrap_or("-")
        ));
        if let (Some(_), Some(a)) = (self.tolerance.min_top1, self.top1_agreement()) {
            s.push_str(&format!(" top1={a:.3}"));
        }
        if !self.notes.is_empty() {
            s.push_str(&format!("  [{}]", self.notes.join("; ")));
        }
        s
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

fn signed_ids(v: Option<&Value>) -> Option<Vec<i64>> {
    v?.as_array()?.iter().map(|x| x.as_i64()).collect()
}

fn ids(v: Option<&Value>) -> Option<Vec<u32>> {
    signed_ids(v)?
        .into_iter()
        .map(|i| u32::try_from(i).ok())
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

/// Golden pixel values in our patch layout. `[N, patch_dim]` is already patches (`ours` gives the
/// grid); `[tiles, C, H, W]` images are cut into patches, and a 4th channel is a content mask the
/// image is cropped to first (EVE v1's padded canvas).
fn golden_patches(
    golden: &Tensor,
    pp: &PreprocessSpec,
    ours: Option<&PatchGrid>,
) -> Result<(Tensor, GridShape)> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!("golden pixel_values {:?}: {why}", golden.dims()))
    };
    match golden.dims() {
        [_, _] => {
            let g = ours.ok_or_else(|| bad("no grid to lay the patches on"))?;
            Ok((golden.clone(), GridShape::of(g)))
        }
        &[n, c, h, w] => {
            let mut x = golden.clone();
            if c == 4 {
                let mask = golden.i((0, 3))?.to_vec2::<f32>()?;
                let rows: Vec<usize> = (0..h)
                    .filter(|&y| mask[y].iter().any(|&m| m > 0.5))
                    .collect();
                let cols: Vec<usize> = (0..w)
                    .filter(|&xx| (0..h).any(|y| mask[y][xx] > 0.5))
                    .collect();
                let (Some(&y0), Some(&y1), Some(&x0), Some(&x1)) =
                    (rows.first(), rows.last(), cols.first(), cols.last())
                else {
                    return Err(bad("empty content mask"));
                };
                x = x
                    .narrow(1, 0, 3)?
                    .narrow(2, y0, y1 + 1 - y0)?
                    .narrow(3, x0, x1 + 1 - x0)?;
            } else if c != 3 {
                return Err(bad("expected 3 or 4 channels"));
            }
            let (_, _, h, w) = x.dims4()?;
            let p = pp.patch;
            if h % p != 0 || w % p != 0 {
                return Err(bad("not a multiple of the patch size"));
            }
            let (r, cc) = (h / p, w / p);
            let x = x.contiguous()?.reshape(vec![n, 3, r, p, cc, p])?;
            let x = match pp.order {
                PatchOrder::Chw => x.permute(vec![0, 2, 4, 1, 3, 5])?,
                PatchOrder::Hwc => x.permute(vec![0, 2, 4, 3, 5, 1])?,
            };
            let patches = x.contiguous()?.reshape((n * r * cc, 3 * p * p))?;
            Ok((
                patches,
                GridShape {
                    tiles: n,
                    rows: r,
                    cols: cc,
                },
            ))
        }
        _ => Err(bad("expected [N, patch_dim] or [tiles, C, H, W]")),
    }
}

/// The reference's ids in our form: each expanding sentinel becomes one placeholder per image row
/// (the run of golden image positions starting there).
fn expand_sentinels(model: &Model, golden: &[i64], positions: &[usize]) -> Option<Vec<u32>> {
    let sentinel = match model.spec.sequence.merge {
        Merge::Expand { sentinel } => Some(sentinel),
        _ => None,
    };
    let mut out = Vec::with_capacity(golden.len());
    for &id in golden {
        if Some(id) == sentinel {
            let start = out.len();
            let run = positions
                .iter()
                .skip_while(|&&p| p < start)
                .enumerate()
                .take_while(|&(k, &p)| p == start + k)
                .count();
            out.extend(std::iter::repeat_n(model.spec.sequence.layout.patch, run));
        } else {
            out.push(u32::try_from(id).ok()?);
        }
    }
    Some(out)
}

/// Our sequence as the reference writes it: with an expanding merge, each image span is one
/// sentinel.
fn reference_form(model: &Model, seq: &Sequence) -> Vec<i64> {
    let Merge::Expand { sentinel } = model.spec.sequence.merge else {
        return seq.ids.iter().map(|&i| i as i64).collect();
    };
    let mut out = Vec::with_capacity(seq.ids.len());
    let mut spans = seq.image_spans.iter().peekable();
    let mut i = 0;
    while i < seq.ids.len() {
        if let Some(span) = spans.next_if(|s| s.start == i) {
            out.push(sentinel);
            i = span.end.max(i + 1);
        } else {
            out.push(seq.ids[i] as i64);
            i += 1;
        }
    }
    out
}

/// Compares our logits with golden ones that may be narrower: the reference may drop the rows of
/// a padded vocabulary (EVE v2 truncates to the tokenizer), which must then be suppressed here.
fn logits_err(
    model: &Model,
    ours: &Tensor,
    golden: &Tensor,
    notes: &mut Vec<String>,
) -> Result<f32> {
    let (v, gw) = (ours.dim(1)?, golden.dim(1)?);
    if gw < v {
        let covered = (gw as u32..v as u32).all(|id| {
            model
                .spec
                .generation
                .suppress
                .iter()
                .any(|r| r.contains(&id))
        });
        if !covered {
            notes.push(format!(
                "reference logits have {gw} columns, ours {v}, and ids {gw}.. are not suppressed"
            ));
            return Ok(f32::INFINITY);
        }
        return max_abs(&ours.narrow(1, 0, gw)?, golden);
    }
    max_abs(ours, golden)
}

/// Rows of `ours` whose argmax equals `golden`'s (over the golden columns), and the row count.
pub fn top1_agreement(ours: &Tensor, golden: &Tensor) -> Result<(usize, usize)> {
    let w = golden.dim(1)?.min(ours.dim(1)?);
    let a = ours.narrow(1, 0, w)?.to_dtype(DType::F32)?.argmax(1)?;
    let b = golden.narrow(1, 0, w)?.to_dtype(DType::F32)?.argmax(1)?;
    let (a, b): (Vec<u32>, Vec<u32>) = (a.to_vec1()?, b.to_vec1()?);
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    Ok((agree, a.len()))
}

/// Greedy continuation of `n` tokens from a prefilled cache.
fn greedy(
    model: &Model,
    embeds: &Tensor,
    image_positions: &[usize],
    n: usize,
    suppress: bool,
) -> Result<Vec<u32>> {
    let mut cache = model.new_cache();
    let h = model.forward_with_images(embeds, image_positions, &mut cache)?;
    greedy_continuation(model, &h, &mut cache, n, suppress)
}

/// Top-1 agreement over every logits row of `reports` (`None` when no case has logits).
pub fn top1_over(reports: &[CaseReport]) -> Option<f32> {
    let (a, n) = reports
        .iter()
        .filter_map(|r| r.top1)
        .fold((0, 0), |(a, n), (x, y)| (a + x, n + y));
    (n > 0).then(|| a as f32 / n as f32)
}

/// Whether a fixture passes: every case, and for quantized models the top-1 agreement over all
/// cases reaches the tolerance's floor.
pub fn all_passed(reports: &[CaseReport]) -> bool {
    let floor = reports.iter().find_map(|r| r.tolerance.min_top1);
    reports.iter().all(CaseReport::passed)
        && floor.is_none_or(|min| top1_over(reports).is_none_or(|a| a >= min))
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
    let tolerance = Tolerance::for_quant_type(model.quant_type.as_deref());
    fixture
        .cases
        .iter()
        .map(|c| {
            let mut r = check_case(&model, &fixture, c)?;
            r.tolerance = tolerance;
            Ok(r)
        })
        .collect()
}

/// Checks the fixture's `image_grid` (and related keys) against our plan. With a `tiles` key the
/// rows/cols are the tile grid; otherwise they are the front end's output grid.
fn check_grid(case: &Value, grid: &PatchGrid, slots: &ImageSlots, r: &mut CaseReport) {
    let Some(g) = case.get("image_grid") else {
        return;
    };
    let num = |k: &str| g.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    let mut bad = Vec::new();
    let mut expect = |what: &str, want: Option<usize>, got: usize| {
        if want.is_some_and(|w| w != got) {
            bad.push(format!("{what} {got} vs {want:?}"));
        }
    };
    let (tile_cols, tile_rows) = grid.tile_grid;
    if g.get("tiles").is_some() {
        expect("tile rows", num("rows"), tile_rows);
        expect("tile cols", num("cols"), tile_cols);
        let tiles = usizes(g.get("tiles")).unwrap_or_default();
        expect("tiles[0]", tiles.first().copied(), tile_cols);
        expect("tiles[1]", tiles.get(1).copied(), tile_rows);
        expect("grid tiles", num("n_tiles"), tile_cols * tile_rows);
        expect("tiles fed", num("pixel_values_batch"), grid.tiles);
        let thumb = g.get("thumbnail").and_then(|v| v.as_bool());
        expect("thumbnail", thumb.map(usize::from), grid.thumbnail as usize);
    } else {
        expect("rows", num("rows"), slots.rows);
        expect("cols", num("cols"), slots.cols);
    }
    expect("patch rows", num("patch_rows"), grid.rows);
    expect("patch cols", num("patch_cols"), grid.cols);
    let want_n = case
        .get("n_image_embeds")
        .and_then(|v| v.as_u64())
        .map(|v| v as usize);
    expect("image rows", want_n, slots.rows_out());
    if !bad.is_empty() {
        r.grid_ok = false;
        r.notes.extend(bad);
    }
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
    let pp = &model.spec.preprocess;

    // Our own preprocessing from the image file.
    let mut images = Vec::new();
    let mut our_grid = None;
    let golden_pixels = fx.tensor(&name, "pixel_values");
    if let Some(path) = &image_path {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let img = pilimage::decode_rgb(&bytes, &DecodeLimits::default())
            .map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
        let grid = model.preprocess(&img)?;
        let slots = model.slots_of(&grid);
        check_grid(case, &grid, &slots, &mut r);
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
            let resized = (grid.resized_hw.1 as u32, grid.resized_hw.0 as u32)
                != (img.width, img.height)
                || grid.thumbnail;
            let tol = if !resized || pp.resample_exact {
                PIXEL_TOL_EXACT
            } else {
                // Two 8-bit steps of a different resampler, in normalized units.
                let min_std = pp.std.iter().cloned().fold(f32::INFINITY, f32::min);
                2.0 * pp.rescale / min_std + PIXEL_TOL_EXACT
            };
            let err = match golden_patches(gp, pp, Some(&grid)) {
                Ok((g, _)) => max_abs(&ours, &g)?,
                Err(e) => {
                    r.notes.push(e.to_string());
                    f32::INFINITY
                }
            };
            r.pixel_err = Some((err, tol));
        }
        images.push(slots);
        our_grid = Some(grid);
    }

    let parts = model
        .turn_parts(format, true, image_path.is_some())
        .to_vec();
    let seq = model.build_turn(&parts, prompt, &images)?;
    let want_ids = signed_ids(case.get("input_ids")).unwrap_or_default();
    let ours = reference_form(model, &seq);
    r.ids_ok = ours == want_ids;
    if !r.ids_ok {
        r.notes.push(format!("ids {ours:?} vs {want_ids:?}"));
    }
    let want_pos = usizes(case.get("image_token_positions")).unwrap_or_default();
    r.positions_ok = seq.image_positions == want_pos;
    if !r.positions_ok {
        r.notes.push(format!(
            "positions {:?} vs {want_pos:?}",
            seq.image_positions
        ));
    }

    // The reference's ids in our form, so the model math below does not depend on our builder.
    let golden_ids = expand_sentinels(model, &want_ids, &want_pos).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name}: input_ids has negative ids but no expanding merge"
        ))
    })?;
    let golden_seq = Sequence {
        ids: golden_ids,
        image_positions: want_pos,
        image_spans: vec![],
    };

    // Rows routed to the modality experts.
    let mask_positions = match fx.tensor(&name, "modality_mask") {
        Some(m) => Some(
            m.to_vec1::<f32>()?
                .iter()
                .enumerate()
                .filter(|(_, &v)| v > 0.5)
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
        ),
        None => usizes(case.get("modality_mask_positions"))
            .or_else(|| usizes(case.get("visual_expert_positions"))),
    };
    let routed = model.expert_positions(&golden_seq).to_vec();
    if let Some(want) = mask_positions {
        r.mask_ok = Some(routed == want);
        if routed != want {
            r.notes.push(format!("expert rows {routed:?} vs {want:?}"));
        }
    }

    // Model math fed with the golden pixel values and the golden ids.
    let image_embeds = match &golden_pixels {
        Some(p) => {
            let (patches, shape) = golden_patches(p, pp, our_grid.as_ref())?;
            let e = model
                .frontend
                .forward_patches(&patches.to_device(&dev)?, shape)?;
            if let Some(g) = fx.tensor(&name, "image_embeds") {
                r.image_embeds_err = Some(max_abs(&e, &g)?);
            }
            Some(e)
        }
        None => None,
    };
    let embeds = model.embed_sequence(&golden_seq, image_embeds.as_ref())?;
    if let Some(g) = fx.tensor(&name, "inputs_embeds") {
        r.inputs_embeds_err = Some(max_abs(&embeds, &g)?);
    }
    let mut cache = model.new_cache();
    let out = model.forward_full(&embeds, &routed, &mut cache)?;
    let hidden = out.hidden;
    if let Some(g) = fx.tensor(&name, "holistic_out") {
        r.pre_decoder_err = Some(match &out.pre_out {
            Some(p) => max_abs(p, &g)?,
            None => f32::INFINITY,
        });
    }
    if let Some(g) = fx.tensor(&name, "logits") {
        let ours = model.decoder.logits(&hidden)?;
        r.logits_err = Some(logits_err(model, &ours, &g, &mut r.notes)?);
        r.top1 = Some(top1_agreement(&ours, &g)?);
    }
    if let Some(g) = fx.tensor(&name, "hidden_last") {
        let last = hidden.i(hidden.dim(0)? - 1)?;
        r.hidden_last_err = Some(max_abs(&last, &g)?);
    }
    if let Some(want) = ids(case.get("greedy_ids")) {
        let got = greedy(model, &embeds, &routed, want.len(), true)?;
        r.greedy_ok = Some(got == want);
        if got != want {
            r.notes.push(format!("greedy {got:?} vs {want:?}"));
        }
    }
    if let Some(want) = ids(case.get("greedy_ids_unsuppressed")) {
        let got = greedy(model, &embeds, &routed, want.len(), false)?;
        r.greedy_unsuppressed_ok = Some(got == want);
        if got != want {
            r.notes
                .push(format!("unsuppressed greedy {got:?} vs {want:?}"));
        }
    }
    Ok(r)
}
