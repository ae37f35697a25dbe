//! Image preview with the model's view of it: the image at the family's resized size, padding,
//! and an overlay of the patch grid (and tiles) exactly as the loaded model tokenizes it.

use crate::app::{MonoApp, PreviewTarget};
use runtime::image::ImagePlan;
use runtime::Model;

/// One line describing how `model` tokenizes a `w × h` image.
pub fn describe_plan(model: &Model, w: u32, h: u32) -> Result<(ImagePlan, String), String> {
    let plan = model.plan_image(w, h).map_err(|e| e.to_string())?;
    let tokens = model.image_token_count(&plan);
    let p = model.spec.preprocess.patch;
    let tiled = plan.tiles > 1 || plan.thumbnail;
    let tiles = if tiled {
        format!(
            " per tile · {} tiles ({}×{} grid{})",
            plan.tiles,
            plan.tile_grid.0,
            plan.tile_grid.1,
            if plan.thumbnail { " + thumbnail" } else { "" }
        )
    } else {
        String::new()
    };
    Ok((
        plan,
        format!(
            "{w}×{h} resized to {}×{} · {} rows × {} columns of {p}px patches{tiles} · {tokens} image tokens",
            plan.resized_w, plan.resized_h, plan.rows, plan.cols
        ),
    ))
}

impl MonoApp {
    pub(crate) fn preview_window(&mut self, ctx: &egui::Context) {
        let Some(target) = self.preview else {
            return;
        };
        let model = self.loaded_model().cloned();
        let att = match target {
            PreviewTarget::Pending(i) => self.pending.get_mut(i),
            PreviewTarget::Message(i, j) => self
                .current
                .messages
                .get_mut(i)
                .and_then(|m| m.images.get_mut(j)),
        };
        let Some(att) = att else {
            self.preview = None;
            return;
        };
        let mut open = true;
        let show_grid = &mut self.show_grid;
        let screen = ctx.content_rect();
        egui::Window::new("Image preview")
            .open(&mut open)
            .pivot(egui::Align2::RIGHT_TOP)
            .default_pos(screen.right_top() + egui::vec2(-16.0, 16.0))
            .default_size([560.0, 480.0])
            .resizable(true)
            .collapsible(false)
            .show(ctx, |ui| {
                let (w, h) = (att.image.width, att.image.height);
                let plan = match &model {
                    Some(m) => match describe_plan(m, w, h) {
                        Ok((plan, line)) => {
                            ui.label(line);
                            Some((plan, m.spec.preprocess.patch))
                        }
                        Err(e) => {
                            ui.colored_label(ui.visuals().error_fg_color, e);
                            None
                        }
                    },
                    None => {
                        ui.weak(format!("{w}×{h} · load a model to see its patch grid"));
                        None
                    }
                };
                ui.checkbox(show_grid, "Show patch grid (as the model tokenizes it)");
                let tex = att.texture(ui.ctx()).clone();
                let avail = ui.available_size().max(egui::vec2(64.0, 64.0));
                match plan {
                    Some((plan, patch)) => {
                        draw_model_view(ui, &tex, &plan, patch, *show_grid, avail)
                    }
                    None => {
                        ui.add(egui::Image::new(&tex).max_size(avail));
                    }
                }
            });
        if !open {
            self.preview = None;
        }
    }
}

/// The resized image (plus bottom/right padding up to whole patches when not tiled) with the
/// patch grid; tile borders are drawn thicker.
fn draw_model_view(
    ui: &mut egui::Ui,
    tex: &egui::TextureHandle,
    plan: &ImagePlan,
    patch: usize,
    grid: bool,
    avail: egui::Vec2,
) {
    let (rw, rh) = (plan.resized_w as f32, plan.resized_h as f32);
    let tiled = plan.tiles > 1 || plan.thumbnail;
    let (tc, tr) = (plan.tile_grid.0.max(1), plan.tile_grid.1.max(1));
    // Extent in resized pixels: tiles cover the resized image; otherwise whole patches do.
    let (ew, eh) = if tiled {
        (rw, rh)
    } else {
        (
            ((plan.cols * patch) as f32).max(rw),
            ((plan.rows * patch) as f32).max(rh),
        )
    };
    let scale = (avail.x / ew).min(avail.y / eh).min(4.0);
    let (rect, _) =
        ui.allocate_exact_size(egui::vec2(ew * scale, eh * scale), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, egui::Color32::from_gray(128));
    let img_rect = egui::Rect::from_min_size(rect.min, egui::vec2(rw * scale, rh * scale));
    painter.image(
        tex.id(),
        img_rect,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        egui::Color32::WHITE,
    );
    if !grid {
        return;
    }
    let thin = egui::Stroke::new(1.0, egui::Color32::from_rgba_unmultiplied(255, 230, 0, 150));
    let thick = egui::Stroke::new(2.5, egui::Color32::from_rgb(255, 64, 64));
    let (tile_w, tile_h) = if tiled {
        (rw / tc as f32, rh / tr as f32)
    } else {
        (ew, eh)
    };
    let (pw, ph) = if tiled {
        (
            tile_w / plan.cols.max(1) as f32,
            tile_h / plan.rows.max(1) as f32,
        )
    } else {
        (patch as f32, patch as f32)
    };
    let at = |x: f32, y: f32| rect.min + egui::vec2(x * scale, y * scale);
    for ty in 0..tr {
        for tx in 0..tc {
            let (x0, y0) = (tx as f32 * tile_w, ty as f32 * tile_h);
            for c in 1..plan.cols {
                let x = x0 + c as f32 * pw;
                painter.line_segment([at(x, y0), at(x, y0 + tile_h)], thin);
            }
            for r in 1..plan.rows {
                let y = y0 + r as f32 * ph;
                painter.line_segment([at(x0, y), at(x0 + tile_w, y)], thin);
            }
            let tile = egui::Rect::from_min_max(at(x0, y0), at(x0 + tile_w, y0 + tile_h));
            painter.rect_stroke(
                tile,
                0.0,
                if tiled { thick } else { thin },
                egui::StrokeKind::Inside,
            );
        }
    }
}
