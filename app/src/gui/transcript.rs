//! The chat transcript: messages with their images, answers rendered as Markdown (code blocks,
//! tables, lists), live streaming stats, and per-message actions (copy, regenerate, edit).

use crate::app::{ModelState, MonoApp, PreviewTarget};
use crate::store::Role;

enum Action {
    Copy(usize),
    Regenerate,
    Edit,
    Preview(usize, usize),
    DismissError(usize),
}

impl MonoApp {
    pub(crate) fn transcript(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        for (i, e) in self.errors.iter().enumerate() {
            egui::Frame::new()
                .fill(ui.visuals().error_fg_color.linear_multiply(0.15))
                .stroke(egui::Stroke::new(1.0, ui.visuals().error_fg_color))
                .corner_radius(4.0)
                .inner_margin(6.0)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                            actions.push(Action::DismissError(i));
                        }
                        ui.add(
                            egui::Label::new(
                                egui::RichText::new(format!("Error: {e}"))
                                    .color(ui.visuals().error_fg_color),
                            )
                            .wrap(),
                        );
                    });
                });
        }

        if self.current.messages.is_empty() {
            ui.add_space(40.0);
            ui.vertical_centered(|ui| {
                ui.heading("Ask a question about an image");
                ui.add_space(6.0);
                ui.label("Attach an image with the button below, drop it on the window or paste it, then type your question.");
                ui.add_space(4.0);
                match &self.model {
                    ModelState::Ready(m) => {
                        ui.weak(format!("Model: {} ({})", model_name(&m.path), m.spec.family));
                    }
                    ModelState::Loading { .. } => {
                        ui.weak("Loading the model…");
                    }
                    _ => {
                        ui.weak("No model loaded: open one in the sidebar.");
                    }
                }
            });
        }

        let n = self.current.messages.len();
        let streaming = self
            .streaming
            .as_ref()
            .map(|s| (s.pieces, s.tokens_per_second()));
        let last_user = self
            .current
            .messages
            .iter()
            .rposition(|m| m.role == Role::User);
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                for (i, m) in self.current.messages.iter_mut().enumerate() {
                    let is_last = i + 1 == n;
                    let user = m.role == Role::User;
                    let frame = if user {
                        egui::Frame::new()
                            .fill(ui.visuals().faint_bg_color)
                            .corner_radius(6.0)
                            .inner_margin(8.0)
                    } else {
                        egui::Frame::new().inner_margin(8.0)
                    };
                    frame.show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.strong(if user { "You" } else { "Assistant" });
                        if !m.images.is_empty() {
                            ui.horizontal_wrapped(|ui| {
                                for (j, a) in m.images.iter_mut().enumerate() {
                                    let tex = a.texture(ui.ctx()).clone();
                                    let img = egui::Image::new(&tex)
                                        .alt_text(format!("Image {} of message {}", j + 1, i + 1))
                                        .max_size(egui::vec2(280.0, 200.0))
                                        .sense(egui::Sense::click());
                                    if ui
                                        .add(img)
                                        .on_hover_text(format!(
                                            "{}×{}: click to see how the model tokenizes it",
                                            a.image.width, a.image.height
                                        ))
                                        .clicked()
                                    {
                                        actions.push(Action::Preview(i, j));
                                    }
                                }
                            });
                        }
                        if user {
                            ui.add(egui::Label::new(&m.text).selectable(true));
                        } else {
                            egui_commonmark::CommonMarkViewer::new().show(
                                ui,
                                &mut self.md_cache,
                                &m.text,
                            );
                        }
                        let live = is_last && !user && streaming.is_some();
                        ui.horizontal(|ui| {
                            if live {
                                let (pieces, tps) = streaming.unwrap_or((0, None));
                                ui.spinner();
                                let speed = tps
                                    .map(|t| format!(" · {t:.1} tokens/s"))
                                    .unwrap_or_default();
                                ui.weak(format!("generating… {pieces} tokens{speed}"));
                                return;
                            }
                            if ui
                                .small_button("Copy")
                                .on_hover_text("Copy this message")
                                .clicked()
                            {
                                actions.push(Action::Copy(i));
                            }
                            if !user && is_last && ui.small_button("Regenerate").clicked() {
                                actions.push(Action::Regenerate);
                            }
                            if user
                                && Some(i) == last_user
                                && streaming.is_none()
                                && ui
                                    .small_button("Edit")
                                    .on_hover_text("Edit and resend this message")
                                    .clicked()
                            {
                                actions.push(Action::Edit);
                            }
                            if let Some(s) = &m.stats {
                                ui.weak(format!(
                                    "{} tokens · {:.1} tokens/s · {} · prompt {} ({} image)",
                                    s.tokens,
                                    s.tokens_per_second,
                                    s.finish,
                                    s.prompt_tokens,
                                    s.image_tokens
                                ));
                            }
                        });
                    });
                    ui.add_space(4.0);
                }
            });

        let ctx = ui.ctx().clone();
        for a in actions.into_iter().rev() {
            match a {
                Action::Copy(i) => self.copy_message(&ctx, i),
                Action::Regenerate => self.regenerate(),
                Action::Edit => self.edit_last(),
                Action::Preview(i, j) => self.preview = Some(PreviewTarget::Message(i, j)),
                Action::DismissError(i) => {
                    if i < self.errors.len() {
                        self.errors.remove(i);
                    }
                }
            }
        }
    }
}

/// A short name for a model path: the file name, with its parent folder for HF folders.
pub(crate) fn model_name(path: &std::path::Path) -> String {
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    match (name(path), path.is_dir()) {
        (Some(n), true) => match path.parent().and_then(name) {
            Some(parent) => format!("{parent}/{n}"),
            None => n,
        },
        (Some(n), false) => n,
        (None, _) => path.display().to_string(),
    }
}
