//! `monovlm`: ask questions about images with native (encoder-free) VLMs, offline.

mod cli_ask;
mod cli_bench;
mod cli_check;
mod cli_inspect;
mod cli_quality;
mod cli_quantize;
mod cli_synth;
mod cli_train;
mod default_model;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "monovlm",
    version,
    about = "Native (encoder-free) vision-language models, offline"
)]
struct Cli {
    /// Without a command: the desktop app when a display is available, else this help.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Ask one question (optionally about images) and stream the answer to stdout.
    Ask(cli_ask::AskArgs),
    /// Interactive terminal chat; `/image PATH` attaches an image to the next message.
    Chat(cli_ask::ChatArgs),
    /// Check the runtime against a golden fixture folder (cases.json + golden.safetensors).
    CheckReference(cli_check::CheckArgs),
    /// Show a model's family, size and dtypes, and how an image would be tokenized.
    Inspect(cli_inspect::InspectArgs),
    /// Measure prefill/decode throughput, time to first token and peak memory of a model.
    Bench(cli_bench::BenchArgs),
    /// Convert an HF checkpoint folder into one self-contained GGUF file (optionally quantized).
    Quantize(cli_quantize::QuantizeArgs),
    /// What quantization cost: KL divergence, top-1 agreement, max |Δlogit| against the reference.
    Quality(cli_quality::QualityArgs),
    /// Train a model (full, LoRA or front end only) on LLaVA-style JSONL; curves, report, checkpoints.
    Train(Box<cli_train::TrainArgs>),
    /// Greedy exact match and answer loss of a model on held-out JSONL, per task and aspect bucket.
    Eval(cli_train::EvalArgs),
    /// Fold a PEFT LoRA adapter into a base HF folder.
    MergeLora(cli_train::MergeArgs),
    /// Write a seeded synthetic training set: images/NNNNNN.png + data.jsonl (LLaVA format).
    Synth(cli_synth::SynthArgs),
    /// Desktop chat app: images, streaming answers, saved conversations.
    Gui(GuiArgs),
    /// OpenAI-compatible local server: /v1/chat/completions (with images), /v1/models, /health.
    Serve(serve::ServeArgs),
    /// List the compute backends this build has and the devices they find.
    Devices,
}

#[derive(clap::Args)]
struct GuiArgs {
    /// Hugging Face checkpoint folder or .gguf file (default: the embedded default model).
    #[arg(long, short)]
    model: Option<std::path::PathBuf>,
}

fn devices() -> anyhow::Result<ExitCode> {
    for b in runtime::device::backends() {
        let state = if !b.compiled {
            "not built"
        } else if b.devices.is_empty() {
            "built, no device"
        } else {
            "ready"
        };
        println!("{:<7} {:<17} {}", b.name, state, b.note);
        for (i, d) in b.devices.iter().enumerate() {
            match b.details.get(i).filter(|s| !s.is_empty()) {
                Some(what) => println!("          {d}: {what}"),
                None => println!("          {d}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn gui(model: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    monovlm_gui::run(model)?;
    Ok(ExitCode::SUCCESS)
}

/// Without a desktop session (no `XDG_RUNTIME_DIR`: servers, CI, ssh), Mesa's Vulkan
/// device-select layer still tries to reach a Wayland display and prints "error:
/// XDG_RUNTIME_DIR is invalid" on every adapter listing, though nothing failed. It only reorders
/// adapters for a display, which such a session does not have (and we order adapters ourselves),
/// so it is switched off there through its documented `NODEVICE_SELECT` variable.
fn quiet_headless_vulkan() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // Called first thing in main, before any thread exists that could read the environment.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() -> ExitCode {
    quiet_headless_vulkan();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let Some(command) = cli.command else {
        if monovlm_gui::display_available() {
            return finish(gui(None));
        }
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::SUCCESS;
    };
    finish(match command {
        Command::Ask(a) => cli_ask::ask(a),
        Command::Chat(a) => cli_ask::chat(a),
        Command::CheckReference(a) => cli_check::run(a),
        Command::Inspect(a) => cli_inspect::run(a),
        Command::Bench(a) => cli_bench::run(a),
        Command::Quantize(a) => cli_quantize::run(a),
        Command::Quality(a) => cli_quality::run(a),
        Command::Synth(a) => cli_synth::run(a),
        Command::Serve(a) => serve::serve(a),
        Command::Train(a) => cli_train::run(*a),
        Command::MergeLora(a) => cli_train::merge(a),
        Command::Eval(a) => cli_train::eval(a),
        Command::Gui(a) => gui(a.model),
        Command::Devices => devices(),
    })
}

/// `--help`/`--version` print as clap renders them; a usage mistake (unknown flag, missing or
/// non-UTF-8 argument) is one `error: …` line like every other failure, exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    let msg = first.trim().trim_start_matches("error:").trim();
    eprintln!("error: {msg} (see --help)");
    ExitCode::from(2)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The whole cause chain on one line; a cause whose text its parent already shows is skipped
/// (library errors often print their source inline, e.g. `path: No such file or directory`).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
