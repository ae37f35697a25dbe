//! The desktop app driven headlessly through egui_kittest (rendered with wgpu on Mesa's lavapipe,
//! no display needed), with real models: the tiny random-weight Fuyu fixture, whose answers are
//! gibberish by design, so the tests check structure (streaming, stop, stats, persistence), and
//! the snapshots mask the only moving numbers (tokens/s); and the embedded default model, whose
//! answer to an example image must be right.
//!
//! Snapshots live in `tests/snapshots/`; refresh them with `UPDATE_SNAPSHOTS=1`.
//! `MONOVLM_GUI_SCREENSHOT=path.png` also saves a render of the embedded model's conversation
//! (how `docs/gui.png` is made).

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use monovlm_gui::{AppOptions, MonoApp};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    std::env::var("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

fn fuyu() -> PathBuf {
    fixtures().join("fuyu-tiny/model")
}

fn fixture_image(name: &str) -> PathBuf {
    fixtures().join("fuyu-tiny/images").join(name)
}

const SIZE: [f32; 2] = [1100.0, 720.0];

fn app(model: Option<PathBuf>, data: &Path, max_tokens: usize) -> MonoApp {
    let mut app = MonoApp::new(AppOptions {
        model,
        data_dir: data.to_path_buf(),
    });
    app.settings_mut().max_tokens = max_tokens;
    app
}

fn harness(app: MonoApp) -> Harness<'static, MonoApp> {
    // The random-weight model's answers can hold any character: draw boxes for missing glyphs.
    harness_with(app, true)
}

/// `tofu: false` panics on any character the fonts lack (for states without model output).
fn harness_with(app: MonoApp, tofu: bool) -> Harness<'static, MonoApp> {
    let builder = Harness::builder();
    let builder = if tofu {
        builder.allow_missing_glyphs()
    } else {
        builder
    };
    builder
        .with_size(SIZE)
        // A blinking text cursor would make snapshots depend on how many frames ran.
        .with_context_setup(|ctx| ctx.all_styles_mut(|s| s.visuals.text_cursor.blink = false))
        .build_ui_state(|ui, app: &mut MonoApp| app.ui(ui), app)
}

/// Steps the UI (the worker thread runs meanwhile) until `done` holds.
fn step_until(h: &mut Harness<'_, MonoApp>, what: &str, done: impl Fn(&MonoApp) -> bool) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; errors: {:?}",
            h.state().errors()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(2));
    }
    h.step();
}

fn wait_model(h: &mut Harness<'_, MonoApp>) {
    step_until(h, "the model", |a| !a.model_loading());
    assert!(h.state().model_ready(), "{:?}", h.state().errors());
}

/// A file dropped on the window, as the platform delivers it.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_file(h: &mut Harness<'_, MonoApp>, path: PathBuf) {
    h.input_mut().dropped_files.push(Arc::new(Dropped(path)));
    h.step();
}

fn type_message(h: &mut Harness<'_, MonoApp>, text: &str) {
    h.get_by_label("Message").focus();
    h.step();
    h.get_by_label("Message").type_text(text);
    h.step();
}

fn answer_text(a: &MonoApp) -> String {
    a.messages()
        .last()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

/// Masks the numbers that change from run to run (speeds), then compares with the stored PNG.
fn snapshot(h: &mut Harness<'_, MonoApp>, name: &str) {
    h.run_steps(2);
    let rects: Vec<egui::Rect> = h
        .query_all_by_label_contains("tokens/s")
        // A fixed width: the masked text's own width changes with the digits.
        .map(|n| egui::Rect::from_min_size(n.rect().min, egui::vec2(640.0, n.rect().height())))
        .collect();
    for r in rects {
        h.mask(r);
    }
    h.snapshot(name);
}

#[test]
fn ask_about_a_dropped_image_and_see_the_streamed_answer() {
    let data = tempfile::tempdir().unwrap();
    let mut h = harness(app(Some(fuyu()), data.path(), 24));
    wait_model(&mut h);
    h.run_steps(2);
    snapshot(&mut h, "empty_chat");

    drop_file(&mut h, fixture_image("wide.png"));
    assert_eq!(h.state().pending_images(), 1);
    assert!(h.query_by_label("Attached image 1").is_some());
    type_message(&mut h, "What is in this image?");
    assert_eq!(h.state().input_text(), "What is in this image?");
    h.key_press(egui::Key::Enter);
    h.step();
    assert!(h.state().is_generating());
    assert_eq!(h.state().messages().len(), 2);
    assert_eq!(h.state().input_text(), "", "Enter sends and clears the box");

    // The answer streams in: it only grows, and the finished text starts with what streamed.
    let mut seen = vec![0usize];
    let t0 = Instant::now();
    while h.state().is_generating() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "generation timed out"
        );
        h.step();
        let n = answer_text(h.state()).len();
        assert!(
            n >= *seen.last().unwrap(),
            "the answer shrank while streaming"
        );
        if n != *seen.last().unwrap() {
            seen.push(n);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    h.step();
    let a = h.state();
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    let answer = &a.messages()[1];
    let stats = answer.stats.as_ref().expect("stats of the finished answer");
    assert!(!answer.text.is_empty(), "empty answer");
    assert!(seen.len() >= 2, "nothing streamed");
    assert!(stats.tokens >= 1 && stats.tokens <= 24, "{stats:?}");
    assert!(stats.image_tokens > 0, "{stats:?}");
    assert!(
        matches!(stats.finish.as_str(), "stop" | "length"),
        "{stats:?}"
    );
    assert_eq!(a.messages()[0].images.len(), 1);
    // The transcript shows the question, the image and the answer's stats.
    // In the transcript and as the conversation's title in the sidebar.
    assert_eq!(h.query_all_by_label("What is in this image?").count(), 2);
    assert!(h.query_by_label("Image 1 of message 1").is_some());
    assert!(h.query_by_label_contains("tokens/s").is_some());
    snapshot(&mut h, "answered");

    // Copy puts the answer on the clipboard (the second Copy button is the answer's).
    let copy = h.get_all_by_label("Copy").nth(1).unwrap().rect().center();
    h.hover_at(copy);
    h.event(egui::Event::PointerButton {
        pos: copy,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.event(egui::Event::PointerButton {
        pos: copy,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
    let copied = h.output().platform_output.commands.iter().any(
        |c| matches!(c, egui::OutputCommand::CopyText(t) if *t == h.state().messages()[1].text),
    );
    assert!(copied, "{:?}", h.output().platform_output.commands);

    // Clicking the image in the transcript shows how the model tokenized it.
    h.get_by_label("Image 1 of message 1").click_accesskit();
    h.run_steps(3);
    assert!(h.query_by_label_contains("image tokens").is_some());

    // The conversation was saved as JSON in the data folder.
    let saved = h.state().saved_conversations();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].messages.len(), 2);
    let file = data
        .path()
        .join("conversations")
        .join(format!("{}.json", saved[0].id));
    assert!(file.exists(), "{file:?}");
}

#[test]
fn paste_an_image_and_preview_its_patch_grid() {
    let data = tempfile::tempdir().unwrap();
    let mut h = harness_with(app(Some(fuyu()), data.path(), 8), false);
    wait_model(&mut h);

    let bytes = std::fs::read(fixture_image("small.png")).unwrap();
    let rgba = image::load_from_memory(&bytes).unwrap().to_rgba8();
    let color = egui::ColorImage::from_rgba_unmultiplied(
        [rgba.width() as usize, rgba.height() as usize],
        rgba.as_raw(),
    );
    h.event(egui::Event::PasteImage(Arc::new(color)));
    h.step();
    assert_eq!(h.state().pending_images(), 1);

    h.get_by_label("Attached image 1").click_accesskit();
    h.run_steps(3);
    let model = h.state().loaded_model().unwrap().clone();
    let plan = model.plan_image(rgba.width(), rgba.height()).unwrap();
    let tokens = model.image_token_count(&plan);
    let line = format!("{tokens} image tokens");
    assert!(
        h.query_by_label_contains(&line).is_some(),
        "the preview shows the token count ({line})"
    );
    assert!(h
        .query_by_label_contains(&format!("resized to {}×{}", plan.resized_w, plan.resized_h))
        .is_some());
    snapshot(&mut h, "preview_patch_grid");
}

#[test]
fn stop_generation_mid_stream() {
    let data = tempfile::tempdir().unwrap();
    let mut h = harness(app(Some(fuyu()), data.path(), 4000));
    wait_model(&mut h);
    // Sampling keeps the random model from settling on an end token early.
    h.state_mut().settings_mut().temperature = 1.0;
    drop_file(&mut h, fixture_image("small.png"));
    type_message(&mut h, "Describe the image in detail.");
    h.get_by_label("Send").click();
    h.step();
    assert!(h.state().is_generating());
    step_until(&mut h, "the first tokens", |a| {
        !answer_text(a).is_empty() || !a.is_generating()
    });
    assert!(
        h.state().is_generating(),
        "finished before it could be stopped"
    );
    h.get_by_label("Stop").click();
    step_until(&mut h, "the stop", |a| !a.is_generating());
    let a = h.state();
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    let stats = a.messages()[1].stats.as_ref().unwrap();
    assert_eq!(stats.finish, "cancelled");
    assert!(stats.tokens < 4000);
    assert!(
        h.query_by_label("Send").is_some(),
        "Send is back after Stop"
    );

    // Esc stops too.
    type_message(&mut h, "Go on.");
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the first tokens", |a| {
        !answer_text(a).is_empty() || !a.is_generating()
    });
    assert!(
        h.state().is_generating(),
        "finished before it could be stopped"
    );
    h.key_press(egui::Key::Escape);
    step_until(&mut h, "the stop", |a| !a.is_generating());
    let stats = h.state().messages()[3].stats.clone().unwrap();
    assert_eq!(stats.finish, "cancelled");
}

#[test]
fn reload_a_saved_conversation_and_continue_it() {
    let data = tempfile::tempdir().unwrap();
    let first_answer;
    {
        let mut h = harness(app(Some(fuyu()), data.path(), 6));
        wait_model(&mut h);
        drop_file(&mut h, fixture_image("tall.png"));
        type_message(&mut h, "Generate a coco-style caption.");
        h.key_press(egui::Key::Enter);
        h.step();
        step_until(&mut h, "the answer", |a| !a.is_generating());
        assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
        first_answer = answer_text(h.state());
    }

    // A new app over the same data folder lists it; clicking it brings it back, image included.
    let mut h = harness(app(Some(fuyu()), data.path(), 6));
    wait_model(&mut h);
    assert!(h.state().messages().is_empty());
    h.get_by_label("Generate a coco-style caption.").click();
    h.run_steps(3);
    let a = h.state();
    assert_eq!(a.messages().len(), 2);
    assert_eq!(a.messages()[0].text, "Generate a coco-style caption.");
    assert_eq!(a.messages()[0].images.len(), 1);
    assert_eq!(a.messages()[1].text, first_answer);
    assert!(h.query_by_label("Image 1 of message 1").is_some());

    // A follow-up replays the saved history into the model's cache, then answers.
    type_message(&mut h, "And the colors?");
    h.key_press(egui::Key::Enter);
    h.step();
    assert!(h.state().is_generating());
    step_until(&mut h, "the follow-up", |a| !a.is_generating());
    let a = h.state();
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    assert_eq!(a.messages().len(), 4);
    assert!(a.messages()[3].stats.is_some());
    assert_eq!(a.saved_conversations().len(), 1);
}

#[test]
fn regenerate_edit_new_chat_rename_and_delete() {
    let data = tempfile::tempdir().unwrap();
    let mut h = harness(app(Some(fuyu()), data.path(), 6));
    wait_model(&mut h);
    drop_file(&mut h, fixture_image("wide.png"));
    type_message(&mut h, "Caption?");
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the answer", |a| !a.is_generating());
    let first = answer_text(h.state());

    // Regenerate: greedy decoding gives the same answer again, in place.
    h.get_by_label("Regenerate").click();
    h.step();
    assert!(h.state().is_generating());
    step_until(&mut h, "the regenerated answer", |a| !a.is_generating());
    assert_eq!(h.state().messages().len(), 2);
    assert_eq!(answer_text(h.state()), first);

    // Edit: the question and its image go back to the composer; resending answers again.
    h.get_by_label("Edit").click();
    h.step();
    assert!(h.state().messages().is_empty());
    assert_eq!(h.state().input_text(), "Caption?");
    assert_eq!(h.state().pending_images(), 1);
    type_message(&mut h, " Be brief.");
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the edited question's answer", |a| {
        !a.is_generating()
    });
    assert_eq!(h.state().messages()[0].text, "Caption? Be brief.");
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());

    // Ctrl+N starts a new chat; the old one stays in the sidebar.
    let id = h.state().conversation_id().to_string();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::N);
    h.step();
    assert!(h.state().messages().is_empty());
    assert_ne!(h.state().conversation_id(), id);
    assert_eq!(h.state().saved_conversations().len(), 1);

    // Rename (what double-click or the context menu does), then delete with the sidebar's ×.
    h.state_mut().rename_conversation(&id, "Renamed chat");
    h.step();
    assert!(h.query_by_label("Renamed chat").is_some());
    let file = data.path().join("conversations").join(format!("{id}.json"));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("Renamed chat"));
    h.get_by_label("×").click();
    h.step();
    assert!(h.state().saved_conversations().is_empty());
    assert!(!file.exists());
}

/// A tiling family (HoVLE): the preview outlines each tile, with the patch grid inside it.
#[test]
fn preview_of_a_tiled_image() {
    let data = tempfile::tempdir().unwrap();
    let model = fixtures().join("hovle-tiny/model");
    let mut h = harness_with(app(Some(model), data.path(), 8), false);
    wait_model(&mut h);
    let image = fixtures().join("hovle-tiny/images/wide_2x1.png");
    drop_file(&mut h, image.clone());
    h.get_by_label("Attached image 1").click_accesskit();
    h.run_steps(3);
    let (w, h_px) = image::image_dimensions(&image).unwrap();
    let plan = h
        .state()
        .loaded_model()
        .unwrap()
        .plan_image(w, h_px)
        .unwrap();
    assert!(plan.tiles > 1, "{plan:?}");
    assert!(h
        .query_by_label_contains(&format!("{} tiles", plan.tiles))
        .is_some());
    snapshot(&mut h, "preview_tiles");
}

/// A saved conversation (written as the app writes it) whose answer uses Markdown: it is listed,
/// opens, and renders code blocks, lists and tables.
#[test]
fn saved_markdown_answer_renders() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("conversations");
    std::fs::create_dir_all(&dir).unwrap();
    let answer = "Here is the **chart** data:\n\n\
        | year | sales |\n|---|---|\n| 2023 | 12 |\n| 2024 | 19 |\n\n\
        Steps:\n\n1. read the axis\n2. compare the bars\n\n\
        - growth: *58%*\n- best year: 2024\n\n\
        ```python\nsales = {2023: 12, 2024: 19}\nprint(sales[2024] / sales[2023])\n```\n";
    let conv = serde_json::json!({
        "id": "md-test",
        "title": "Markdown answer",
        "updated": 1,
        "messages": [
            {"role": "user", "text": "Summarize the chart as a table.", "images": []},
            {"role": "assistant", "text": answer, "images": [],
             "stats": {"tokens": 60, "tokens_per_second": 0.0, "finish": "stop",
                       "prompt_tokens": 20, "image_tokens": 0}}
        ]
    });
    std::fs::write(dir.join("md-test.json"), conv.to_string()).unwrap();
    let mut h = harness_with(app(Some(fuyu()), data.path(), 8), false);
    wait_model(&mut h);
    h.get_by_label("Markdown answer").click();
    h.run_steps(3);
    assert_eq!(h.state().messages().len(), 2);
    assert!(h.query_by_label_contains("compare the bars").is_some());
    // The code block is a read-only code editor: its text is the node's value.
    assert!(h
        .query_all_by(|n| n.value().is_some_and(|v| v.contains("print(sales[2024]")))
        .next()
        .is_some());
    snapshot(&mut h, "markdown");
}

/// The app takes the system's light theme (eframe passes it; here the harness plays the system).
#[test]
fn light_theme() {
    let data = tempfile::tempdir().unwrap();
    let mut h = Harness::builder()
        .with_size(SIZE)
        .with_theme(egui::Theme::Light)
        .with_context_setup(|ctx| ctx.all_styles_mut(|s| s.visuals.text_cursor.blink = false))
        .build_ui_state(
            |ui, app: &mut MonoApp| app.ui(ui),
            app(Some(fuyu()), data.path(), 8),
        );
    wait_model(&mut h);
    drop_file(&mut h, fixture_image("tall.png"));
    type_message(&mut h, "Which shapes do you see?");
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    snapshot(&mut h, "light_composer");
}

#[test]
fn errors_show_in_the_window() {
    // Fixed paths: they appear in the error messages of the snapshot.
    let data = std::env::temp_dir().join("monovlm-gui-test-errors");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let data = DirGuard(data);
    let bad = data.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF but not really").unwrap();
    let mut h = harness_with(app(Some(bad), data.path(), 8), false);
    step_until(&mut h, "the failed load", |a| !a.model_loading());
    assert!(!h.state().model_ready());
    assert!(h.query_by_label_contains("Error: could not load").is_some());

    // An unreadable image is an error message too, not a crash.
    let not_image = data.path().join("notes.png");
    std::fs::write(&not_image, b"plain text").unwrap();
    drop_file(&mut h, not_image);
    assert_eq!(h.state().pending_images(), 0);
    assert_eq!(h.state().errors().len(), 2, "{:?}", h.state().errors());

    // Sending without a model says so.
    type_message(&mut h, "hello");
    h.key_press(egui::Key::Enter);
    h.step();
    assert!(!h.state().is_generating());
    assert!(h.query_by_label_contains("no model is loaded").is_some());
    snapshot(&mut h, "errors");

    // A model typed into the sidebar's path field loads.
    h.get_by_label("Path").focus();
    h.step();
    h.get_by_label("Path").type_text(fuyu().to_str().unwrap());
    h.step();
    h.get_by_label("Load").click();
    h.step();
    assert!(h.state().model_loading());
    wait_model(&mut h);
}

#[test]
fn without_a_display_gui_is_one_error_line_and_no_command_is_help() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_monovlm"))
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run monovlm")
    };
    let out = run(&["gui", "--model", fuyu().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no display"), "{err}");

    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Usage") && text.contains("gui"), "{text}");
}

/// The real binary opens its window under Xvfb, draws, screenshots itself and exits
/// (skipped where Xvfb is not installed; CI installs it).
#[test]
fn real_window_under_xvfb() {
    let Ok(xvfb) = which("Xvfb") else {
        eprintln!("skipped: Xvfb is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let display = format!(":{}", 90 + std::process::id() % 100);
    let mut server = std::process::Command::new(xvfb)
        .args([
            display.as_str(),
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start Xvfb");
    std::thread::sleep(Duration::from_millis(800));
    let shot = dir.path().join("window.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monovlm"))
        .args(["gui", "--model", fuyu().to_str().unwrap()])
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("MONOVLM_DATA_DIR", dir.path())
        .env("MONOVLM_GUI_SMOKE", &shot)
        .output()
        .expect("run monovlm gui");
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let img = image::open(&shot)
        .expect("the window's screenshot")
        .to_rgba8();
    assert!(
        img.width() >= 640 && img.height() >= 420,
        "{}x{}",
        img.width(),
        img.height()
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Removes a fixed test folder at the end.
struct DirGuard(PathBuf);

impl DirGuard {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The embedded default model (no model given: `assets/monovlm-tiny-q8_0.gguf`) answers the first
/// README example: the answer in the transcript is the generator's ground truth for that image
/// (`assets/examples/examples.jsonl`, written by `monovlm synth`), not our own earlier output.
/// `MONOVLM_GUI_SCREENSHOT=path.png` saves this conversation (how `docs/gui.png` is made).
#[test]
fn the_embedded_model_answers_an_example_image() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/examples");
    let text = std::fs::read_to_string(examples.join("examples.jsonl")).expect("examples.jsonl");
    let rec: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("an example")).expect("json");
    let image = examples.join(rec["image"].as_str().expect("image"));
    let question = rec["conversations"][0]["value"]
        .as_str()
        .expect("question")
        .trim_start_matches("<image>\n");
    let answer = rec["conversations"][1]["value"].as_str().expect("answer");

    let data = tempfile::tempdir().unwrap();
    let mut h = harness_with(app(None, data.path(), 32), false);
    wait_model(&mut h);
    drop_file(&mut h, image);
    type_message(&mut h, question);
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, "the answer", |a| !a.is_generating());
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    assert_eq!(answer_text(h.state()).trim(), answer, "{question}");
    h.get_by_label("Image 1 of message 1").click_accesskit();
    h.run_steps(3);
    if let Ok(path) = std::env::var("MONOVLM_GUI_SCREENSHOT") {
        let img = h.render().expect("render");
        img.save(&path).expect("save the screenshot");
    }
    snapshot(&mut h, "embedded_model_answer");
}
