//! `monovlm gui`: the desktop chat app (eframe/egui).
//!
//! [`app::MonoApp`] holds the state and actions; [`worker`] runs the model on its own thread;
//! [`transcript`], [`composer`], [`sidebar`] and [`preview`] draw the window; [`store`] keeps
//! conversations and settings on disk. The UI tests (`app/tests/gui.rs`) drive
//! [`app::MonoApp::ui`] through egui_kittest with a real model.

pub mod app;
pub mod attach;
pub mod composer;
pub mod preview;
pub mod sidebar;
pub mod store;
pub mod transcript;
pub mod worker;

#[path = "../default_model.rs"]
mod default_model;

pub use app::{AppOptions, MonoApp};

use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;

/// Whether a desktop session is there to open a window in.
pub fn display_available() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if cfg!(any(target_os = "windows", target_os = "macos")) {
        return true;
    }
    set("DISPLAY") || set("WAYLAND_DISPLAY")
}

impl MonoApp {
    /// Draws the whole window (also what the UI tests call).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        // Light/dark follows the system: egui's default theme preference, fed by eframe.
        let ctx = ui.ctx().clone();
        self.backend.set_context(&ctx);
        self.process_events();
        self.handle_input_events(&ctx);

        egui::Panel::left("sidebar")
            .resizable(true)
            .default_size(260.0)
            .size_range(200.0..=420.0)
            .show(ui, |ui| self.sidebar(ui));
        egui::Panel::bottom("composer")
            .resizable(false)
            .show(ui, |ui| self.composer(ui));
        egui::CentralPanel::default().show(ui, |ui| self.transcript(ui));
        self.preview_window(&ctx);

        if self.model_loading() || self.streaming.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }
}

/// The native window around [`MonoApp`]. With `$MONOVLM_GUI_SMOKE=out.png` it saves a
/// screenshot of itself once the model has loaded (or failed to) and closes: the smoke test of
/// the real binary under Xvfb.
struct Window {
    app: MonoApp,
    smoke: Option<PathBuf>,
    frames: u32,
    requested: bool,
    shot_done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.ui(ui);
        let Some(out) = self.smoke.clone() else {
            return;
        };
        let ctx = ui.ctx().clone();
        self.frames += 1;
        if !self.requested && !self.app.model_loading() && self.frames > 5 {
            let done = self.shot_done.clone();
            ctx.request_screenshot(move |img| {
                let [w, h] = img.size;
                let rgba: Vec<u8> = img.pixels.iter().flat_map(|p| p.to_array()).collect();
                let saved = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
                    .map(|b| b.save(&out).is_ok())
                    .unwrap_or(false);
                eprintln!(
                    "gui smoke: {w}x{h} screenshot {} {}",
                    if saved {
                        "saved to"
                    } else {
                        "could not be saved to"
                    },
                    out.display()
                );
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            self.requested = true;
        }
        if self.shot_done.load(std::sync::atomic::Ordering::SeqCst) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else {
            ctx.request_repaint();
        }
    }

    fn on_exit(&mut self) {
        self.app.stop();
        self.app.save_current();
    }
}

/// Opens the window; returns when it is closed.
pub fn run(model: Option<PathBuf>) -> Result<()> {
    if !display_available() {
        bail!("no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); use `monovlm ask` or `monovlm chat` in a terminal");
    }
    let data_dir = store::Store::default_dir()?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("monovlm")
            .with_app_id("monovlm")
            .with_inner_size([1100.0, 720.0])
            .with_min_inner_size([640.0, 420.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "monovlm",
        options,
        Box::new(move |_cc| {
            Ok(Box::new(Window {
                app: MonoApp::new(AppOptions { model, data_dir }),
                smoke: std::env::var_os("MONOVLM_GUI_SMOKE").map(PathBuf::from),
                frames: 0,
                requested: false,
                shot_done: Default::default(),
            }))
        }),
    )
    .map_err(|e| anyhow!("could not open the window: {e}"))
}
