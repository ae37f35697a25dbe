//! The composer (message box, attachments, Send/Stop) and window-wide input: dropped files,
//! pasted images and keyboard shortcuts.

use crate::app::{MonoApp, PreviewTarget};
use egui::{Key, KeyboardShortcut, Modifiers};

pub const INPUT_ID: &str = "message-input";
/// Ctrl/Cmd+N: new chat.
pub const NEW_CHAT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::N);
/// Ctrl/Cmd+L: focus the message box.
pub const FOCUS_INPUT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::L);
/// Escape: stop generating.
pub const STOP: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);

impl MonoApp {
    pub(crate) fn input_id() -> egui::Id {
        egui::Id::unique(INPUT_ID)
    }

    pub(crate) fn handle_input_events(&mut self, ctx: &egui::Context) {
        // Files dropped on the window.
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for f in dropped {
            let path = f.path().to_path_buf();
            if path.as_os_str().is_empty() {
                match f.bytes() {
                    Ok(b) => match crate::attach::decode_bytes(&b) {
                        Ok(img) => self
                            .pending
                            .push(crate::attach::Attachment::new(img, "dropped")),
                        Err(e) => self.errors.push(format!("dropped file: {e:#}")),
                    },
                    Err(e) => self.errors.push(format!("dropped file: {e}")),
                }
            } else {
                self.attach_path(&path);
            }
        }
        // Images pasted from the clipboard (Ctrl/Cmd+V when it holds an image).
        let pasted: Vec<std::sync::Arc<egui::ColorImage>> = ctx.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::PasteImage(img) => Some(img.clone()),
                    _ => None,
                })
                .collect()
        });
        for img in pasted {
            self.attach_pasted(&img);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&NEW_CHAT)) {
            self.new_chat();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&FOCUS_INPUT)) {
            self.focus_input = true;
        }
        if self.streaming.is_some() && ctx.input_mut(|i| i.consume_shortcut(&STOP)) {
            self.stop();
        }
    }

    pub(crate) fn composer(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        if ui.ctx().input(|i| !i.raw.hovered_files.is_empty()) {
            ui.colored_label(ui.visuals().hyperlink_color, "Drop images to attach them");
        }
        if !self.pending.is_empty() {
            let mut remove = None;
            let mut open = None;
            ui.horizontal_wrapped(|ui| {
                for (i, a) in self.pending.iter_mut().enumerate() {
                    let tex = a.texture(ui.ctx()).clone();
                    ui.vertical(|ui| {
                        let img = egui::Image::new(&tex)
                            .alt_text(format!("Attached image {}", i + 1))
                            .max_size(egui::vec2(96.0, 72.0))
                            .sense(egui::Sense::click());
                        if ui
                            .add(img)
                            .on_hover_text("Preview with the model's patch grid")
                            .clicked()
                        {
                            open = Some(i);
                        }
                        ui.horizontal(|ui| {
                            ui.small(format!("{}×{}", a.image.width, a.image.height));
                            if ui.small_button("×").on_hover_text("Remove").clicked() {
                                remove = Some(i);
                            }
                        });
                    });
                }
            });
            if let Some(i) = open {
                self.preview = Some(PreviewTarget::Pending(i));
            }
            if let Some(i) = remove {
                self.pending.remove(i);
                if matches!(self.preview, Some(PreviewTarget::Pending(_))) {
                    self.preview = None;
                }
            }
        }

        // Enter sends, Shift+Enter is a newline: take plain Enter away before the text box sees it.
        let id = Self::input_id();
        let focused = ui.memory(|m| m.has_focus(id));
        let mut send = false;
        if focused {
            ui.input_mut(|i| {
                i.events.retain(|e| match e {
                    egui::Event::Key {
                        key: Key::Enter,
                        pressed,
                        modifiers,
                        ..
                    } if !modifiers.shift && !modifiers.alt && !modifiers.command => {
                        if *pressed {
                            send = true;
                        }
                        false
                    }
                    _ => true,
                })
            });
        }

        ui.horizontal(|ui| {
            if ui
                .button("Attach image…")
                .on_hover_text("Attach images (or drop them on the window, or paste with Ctrl+V)")
                .clicked()
            {
                self.open_file_dialog_images();
            }
            let label = ui.label("Message");
            let button_w = 90.0;
            let edit = egui::TextEdit::multiline(&mut self.input)
                .id(id)
                .hint_text("Ask about an image… (Enter sends, Shift+Enter for a new line)")
                .desired_rows(2)
                .desired_width(ui.available_width() - button_w);
            let resp = ui.add(edit).labelled_by(label.id);
            if self.focus_input {
                resp.request_focus();
                // Cursor at the end (after Edit puts a message back).
                if let Some(mut state) = egui::TextEdit::load_state(ui.ctx(), id) {
                    let end = egui::text::CCursor::new(self.input.chars().count());
                    state
                        .cursor
                        .set_char_range(Some(egui::text::CCursorRange::one(end)));
                    state.store(ui.ctx(), id);
                }
                self.focus_input = false;
            }
            if self.streaming.is_some() {
                if ui
                    .add_sized([button_w - 8.0, 28.0], egui::Button::new("Stop"))
                    .on_hover_text("Stop generating (Esc)")
                    .clicked()
                {
                    self.stop();
                }
            } else {
                let can_send = !self.input.trim().is_empty() || !self.pending.is_empty();
                if ui
                    .add_enabled(
                        can_send,
                        egui::Button::new("Send").min_size(egui::vec2(button_w - 8.0, 28.0)),
                    )
                    .clicked()
                {
                    send = true;
                }
            }
        });
        ui.add_space(4.0);
        if send {
            self.send_input();
        }
    }
}
