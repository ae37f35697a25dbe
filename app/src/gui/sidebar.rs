//! The sidebar: conversations (open, rename, delete), model picker with recent models and the
//! default model, device picker, and generation settings.

use crate::app::{ModelState, MonoApp};
use crate::transcript::model_name;
use std::path::PathBuf;

/// Devices compiled into this build and found here: (label, `--device` name).
pub fn available_devices() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in runtime::device::backends() {
        if !b.compiled {
            continue;
        }
        if b.name == "cpu" {
            out.push(("CPU".to_string(), "cpu".to_string()));
            continue;
        }
        for d in &b.devices {
            let n = d.rsplit(':').next().unwrap_or("0");
            let label = match b.name {
                "cuda" => format!("CUDA {n}"),
                "metal" => format!("Metal {n}"),
                "vulkan" => format!("Vulkan {n}"),
                other => format!("{other} {n}"),
            };
            out.push((label, d.clone()));
        }
    }
    out
}

enum Action {
    Open(String),
    Delete(String),
    StartRename(String, String),
    FinishRename,
    Load(PathBuf),
}

impl MonoApp {
    pub(crate) fn sidebar(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        let busy = self.streaming.is_some();
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.heading("monovlm");
            if ui
                .add_enabled(!busy, egui::Button::new("+ New chat"))
                .on_hover_text("New chat (Ctrl+N)")
                .clicked()
            {
                self.new_chat();
            }
        });
        ui.separator();

        egui::ScrollArea::vertical()
            .id_salt("sidebar-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.label(egui::RichText::new("Conversations").strong());
                let current = self.current.id.clone();
                let unsaved = self.current.messages.is_empty();
                if unsaved {
                    let _ = ui.selectable_label(true, "New chat");
                }
                for c in &self.saved {
                    ui.horizontal(|ui| {
                        if let Some((id, buf)) = &mut self.renaming {
                            if *id == c.id {
                                let r = ui.add(
                                    egui::TextEdit::singleline(buf)
                                        .desired_width(ui.available_width() - 8.0),
                                );
                                r.request_focus();
                                if r.lost_focus() {
                                    actions.push(Action::FinishRename);
                                }
                                return;
                            }
                        }
                        let deletable = !(busy && c.id == current);
                        let del = ui
                            .add_enabled(deletable, egui::Button::new("×").small())
                            .on_hover_text("Delete this conversation");
                        if del.clicked() {
                            actions.push(Action::Delete(c.id.clone()));
                        }
                        let r = ui.add_enabled(
                            !busy || c.id == current,
                            egui::Button::selectable(c.id == current, c.title.as_str()).truncate(),
                        );
                        if r.clicked() {
                            actions.push(Action::Open(c.id.clone()));
                        }
                        if r.double_clicked() {
                            actions.push(Action::StartRename(c.id.clone(), c.title.clone()));
                        }
                        r.on_hover_text("Double-click or right-click to rename")
                            .context_menu(|ui| {
                                if ui.button("Rename").clicked() {
                                    actions
                                        .push(Action::StartRename(c.id.clone(), c.title.clone()));
                                }
                                if ui
                                    .add_enabled(deletable, egui::Button::new("Delete"))
                                    .clicked()
                                {
                                    actions.push(Action::Delete(c.id.clone()));
                                }
                            });
                    });
                }
                if self.saved.is_empty() && !unsaved {
                    ui.weak("No saved conversations yet.");
                }

                ui.add_space(8.0);
                ui.separator();
                ui.label(egui::RichText::new("Model").strong());
                match &self.model {
                    ModelState::None => {
                        ui.weak("No model loaded.");
                    }
                    ModelState::Loading { path, since } => {
                        ui.label(format!("Loading {}…", model_name(path)));
                        ui.add(
                            egui::ProgressBar::new(0.0)
                                .animate(true)
                                .text(format!("{:.1} s", since.elapsed().as_secs_f32())),
                        );
                    }
                    ModelState::Ready(m) => {
                        ui.label(format!("{} ({})", model_name(&m.path), m.spec.family))
                            .on_hover_text(m.path.display().to_string());
                        ui.weak(format!(
                            "{:.1}M parameters · context {}{}",
                            m.stats.parameters as f64 / 1e6,
                            m.spec.decoder.max_position,
                            m.quant_type
                                .as_ref()
                                .map(|q| format!(" · {q}"))
                                .unwrap_or_default()
                        ));
                    }
                    ModelState::Failed(e) => {
                        ui.colored_label(ui.visuals().error_fg_color, "No model loaded")
                            .on_hover_text(e);
                    }
                }
                let loading = self.model_loading();
                ui.horizontal_wrapped(|ui| {
                    if ui
                        .add_enabled(!busy && !loading, egui::Button::new("Open .gguf…"))
                        .clicked()
                    {
                        self.open_file_dialog_model(false);
                    }
                    if ui
                        .add_enabled(!busy && !loading, egui::Button::new("Open HF folder…"))
                        .clicked()
                    {
                        self.open_file_dialog_model(true);
                    }
                });
                ui.horizontal(|ui| {
                    let l = ui.label("Path");
                    let r = ui
                        .add(
                            egui::TextEdit::singleline(&mut self.model_path_input)
                                .hint_text("model folder or .gguf")
                                // Leave room for the label and the button (no panel growth).
                                .desired_width((ui.available_width() - 96.0).max(60.0)),
                        )
                        .labelled_by(l.id);
                    let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    let path = self.model_path_input.trim();
                    let can = !busy && !loading && !path.is_empty();
                    if (ui.add_enabled(can, egui::Button::new("Load")).clicked() || (enter && can))
                        && !path.is_empty()
                    {
                        actions.push(Action::Load(PathBuf::from(path)));
                    }
                });
                let default = crate::default_model::resolve(None);
                ui.add_enabled_ui(!busy && !loading, |ui| {
                    let r = ui.add_enabled(default.is_ok(), egui::Button::new("Default model"));
                    match &default {
                        Ok(d) => {
                            if r.on_hover_text(d.display().to_string()).clicked() {
                                actions.push(Action::Load(d.clone()));
                            }
                        }
                        Err(e) => {
                            r.on_disabled_hover_text(format!("{e:#}"));
                        }
                    }
                    if !self.settings.recent_models.is_empty() {
                        ui.weak("Recent:");
                        for p in &self.settings.recent_models {
                            if ui
                                .link(model_name(p))
                                .on_hover_text(p.display().to_string())
                                .clicked()
                            {
                                actions.push(Action::Load(p.clone()));
                            }
                        }
                    }
                });

                ui.add_space(8.0);
                ui.separator();
                let device_label = ui.label(egui::RichText::new("Device").strong());
                let devices = available_devices();
                let mut device = devices
                    .iter()
                    .position(|(_, name)| *name == self.device)
                    .unwrap_or(0);
                let before_device = device;
                let selected = devices.get(device).map_or("CPU", |(l, _)| l.as_str());
                egui::ComboBox::from_id_salt("device")
                    .selected_text(selected)
                    .show_ui(ui, |ui| {
                        for (i, (label, _)) in devices.iter().enumerate() {
                            ui.selectable_value(&mut device, i, label.as_str());
                        }
                    })
                    .response
                    .labelled_by(device_label.id)
                    .on_hover_text("Devices compiled into this build and available here");
                if device != before_device && !busy {
                    if let Some((_, name)) = devices.get(device) {
                        self.device = name.clone();
                        // The loaded model moves to the new device: load it again there.
                        if let Some(path) = self.model_path.clone() {
                            actions.push(Action::Load(path));
                        }
                    }
                }

                ui.add_space(8.0);
                ui.separator();
                ui.label(egui::RichText::new("Generation").strong());
                let before = self.settings.clone();
                egui::Grid::new("gen-settings")
                    .num_columns(2)
                    .show(ui, |ui| {
                        let l = ui
                            .label("Temperature")
                            .on_hover_text("0 = greedy (always the most likely token)");
                        ui.add(
                            egui::DragValue::new(&mut self.settings.temperature)
                                .range(0.0..=2.0)
                                .speed(0.01)
                                .fixed_decimals(2),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("Top-p");
                        ui.add(
                            egui::DragValue::new(&mut self.settings.top_p)
                                .range(0.05..=1.0)
                                .speed(0.01)
                                .fixed_decimals(2),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                        let l = ui.label("Max tokens");
                        ui.add(
                            egui::DragValue::new(&mut self.settings.max_tokens)
                                .range(1..=8192)
                                .speed(4),
                        )
                        .labelled_by(l.id);
                        ui.end_row();
                    });
                let label = ui.label("System prompt");
                ui.add(
                    egui::TextEdit::multiline(&mut self.settings.system_prompt)
                        .hint_text("Put in front of the first message")
                        .desired_rows(2)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(label.id);
                if self.settings != before {
                    self.save_settings();
                }
                ui.add_space(8.0);
                ui.weak("Ctrl+N new chat · Ctrl+L focus input · Esc stop");
            });

        for a in actions {
            match a {
                Action::Open(id) => self.open_conversation(&id),
                Action::Delete(id) => self.delete_conversation(&id),
                Action::StartRename(id, title) => self.renaming = Some((id, title)),
                Action::FinishRename => {
                    if let Some((id, title)) = self.renaming.take() {
                        self.rename_conversation(&id, &title);
                    }
                }
                Action::Load(p) => self.load_model(p),
            }
        }
    }
}
