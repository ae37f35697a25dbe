#!/usr/bin/env bash
# Trains the embedded default model, monovlm-tiny, from scratch and writes it to assets/:
# synthetic data (monovlm synth) → monovlm train (Fuyu family, 16 px patches, 5.0 M parameters)
# → monovlm quantize (q8_0) → held-out evaluation on unseen seeds. One command, 2 CPU cores.
#
#   assets/train-default-model.sh            # WORK=/tmp/monovlm-tiny by default
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/monovlm-tiny}
STEPS=${STEPS:-1800}
cargo build --release -p monovlm
BIN=${CARGO_TARGET_DIR:-target}/release/monovlm
mkdir -p "$WORK"

# Training data: half the image records first ask for a transcription of everything drawn (dense
# reading supervision), 8 % are text-only questions (keeps the language side honest).
"$BIN" synth --out "$WORK/train" --count $((STEPS * 16 + 1200)) --seed 1 \
  --text-only-ratio 0.08 --transcribe-ratio 0.5
"$BIN" synth --out "$WORK/eval" --count 200 --seed 2

"$BIN" train --model assets/model-src/config.json --data "$WORK/train/data.jsonl" \
  --eval "$WORK/eval/data.jsonl" --method full --steps "$STEPS" --batch 16 --lr 5e-4 \
  --warmup 100 --eval-every 200 --eval-samples 200 --checkpoint-every 200 --seed 1 \
  --out "$WORK/run"

"$BIN" quantize "$WORK/run/model" -o assets/monovlm-tiny-q8_0.gguf --type q8_0
cp "$WORK/run/curves.png" assets/monovlm-tiny-curves.png
cp "$WORK/run/metrics.csv" assets/monovlm-tiny-metrics.csv

# Held-out figures: 1000 records from seeds the training never saw.
"$BIN" synth --out "$WORK/heldout" --count 1000 --seed 7
"$BIN" eval --model assets/monovlm-tiny-q8_0.gguf --data "$WORK/heldout/data.jsonl" \
  | tee assets/monovlm-tiny-eval.md
