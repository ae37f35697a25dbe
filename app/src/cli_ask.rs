//! `ask` and `chat`: stream answers from a model.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use runtime::image::{pilimage, DecodeLimits, RgbImage};
use runtime::{
    Chat, ComputeDtype, GenerationOptions, LoadOptions, Model, PromptFormat, SamplingOptions,
};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum Template {
    /// The family's chat/instruction format.
    Chat,
    /// Plain completion after the image.
    Raw,
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Hugging Face checkpoint folder or .gguf file (default: the embedded default model).
    #[arg(long, short)]
    pub model: Option<PathBuf>,
    /// Compute precision: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// A PEFT LoRA adapter folder applied on top of the model (not merged).
    #[arg(long)]
    pub lora: Option<PathBuf>,
    /// Compute device: cpu, cuda[:N], metal[:N] or vulkan[:N] (`monovlm devices` lists this build's).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Args, Clone)]
pub struct GenArgs {
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "chat")]
    pub template: Template,
}

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Image file(s) to ask about.
    #[arg(long, short)]
    pub image: Vec<PathBuf>,
    #[command(flatten)]
    pub gen: GenArgs,
    /// The question.
    pub question: String,
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gen: GenArgs,
}

/// Opens `--device`, printing a note when the device will be slow (a software Vulkan driver).
pub fn open_device(spec: &str) -> Result<runtime::device::ComputeDevice> {
    let device = runtime::device::parse_device(spec)?;
    if let Some(note) = device.performance_note() {
        eprintln!("note: {note}");
    }
    Ok(device)
}

pub fn load_model(m: &ModelArgs) -> Result<Model> {
    let dtype: ComputeDtype = m.dtype.parse()?;
    let opts = LoadOptions {
        dtype,
        lora: m.lora.clone(),
        device: open_device(&m.device)?,
    };
    let path = m.path()?;
    Model::load(&path, &opts).with_context(|| format!("loading {}", path.display()))
}

impl ModelArgs {
    /// The model path: `--model`, else the default model.
    pub fn path(&self) -> Result<PathBuf> {
        crate::default_model::resolve(self.model.as_deref())
    }
}

pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    pilimage::decode_rgb(&bytes, &DecodeLimits::default())
        .with_context(|| format!("decoding {}", path.display()))
}

fn gen_options(g: &GenArgs) -> GenerationOptions {
    GenerationOptions {
        max_tokens: g.max_tokens,
        sampling: SamplingOptions {
            temperature: g.temperature,
            top_k: g.top_k,
            top_p: g.top_p,
            repetition_penalty: g.repetition_penalty,
            seed: g.seed,
        },
        ..Default::default()
    }
}

fn format(t: Template) -> PromptFormat {
    match t {
        Template::Chat => PromptFormat::Chat,
        Template::Raw => PromptFormat::Raw,
    }
}

fn stream_to_stdout(piece: &str) -> bool {
    let mut out = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) stops generation instead of panicking.
    out.write_all(piece.as_bytes()).is_ok() && out.flush().is_ok()
}

pub fn ask(a: AskArgs) -> Result<ExitCode> {
    let images = a
        .image
        .iter()
        .map(|p| load_image(p))
        .collect::<Result<Vec<_>>>()?;
    let model = load_model(&a.model)?;
    let mut chat = Chat::new(&model, format(a.gen.template));
    chat.send(
        &a.question,
        &images,
        &gen_options(&a.gen),
        &mut stream_to_stdout,
    )?;
    println!();
    Ok(ExitCode::SUCCESS)
}

pub fn chat(a: ChatArgs) -> Result<ExitCode> {
    let model = load_model(&a.model)?;
    let mut chat = Chat::new(&model, format(a.gen.template));
    let opts = gen_options(&a.gen);
    let mut pending: Vec<RgbImage> = Vec::new();
    eprintln!(
        "monovlm chat — {} model. `/image PATH` attaches an image, `/quit` exits.",
        model.spec.family
    );
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "/quit" || line == "/exit" {
            break;
        }
        if let Some(path) = line.strip_prefix("/image ") {
            match load_image(Path::new(path.trim())) {
                Ok(img) => {
                    let plan = model.plan_image(img.width, img.height)?;
                    eprintln!(
                        "attached {}x{} → {}x{} patches, {} image tokens",
                        img.width,
                        img.height,
                        plan.rows,
                        plan.cols,
                        model.image_token_count(&plan)
                    );
                    pending.push(img);
                }
                Err(e) => eprintln!("error: {e:#}"),
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let images = std::mem::take(&mut pending);
        match chat.send(line, &images, &opts, &mut stream_to_stdout) {
            Ok(_) => println!(),
            Err(e) => {
                eprintln!("error: {e}");
                if matches!(e, runtime::Error::ContextOverflow { .. }) {
                    bail!("conversation is over the context length; start a new chat");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
