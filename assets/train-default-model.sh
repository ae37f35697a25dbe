#!/usr/bin/env bash
# Trains the embedded default model, monovlm-tiny, from scratch and writes it to assets/:
# synthetic data (monovlm synth) → monovlm train (Fuyu family, 8 px patches, 0.9 M parameters)
# → monovlm quantize (q8_0) → held-out evaluation on unseen seeds. One command, 2 CPU cores,
# about 55 minutes of training.
#
#   assets/train-default-model.sh            # WORK=/tmp/monovlm-tiny by default
#
# Why this shape (bench/recipe-sweep.md): in a recipe search on a GPU (a PyTorch twin of this
# trainer), reading numbers from scratch reached 99 % exact after 64k samples with 8 px patches
# against 66 % with Fuyu's usual 16 px. On this generator's numbers, at what 2 CPU cores train in
# under an hour, the twin gave: 5 M parameters, 1,100 steps: 2 %; 0.9 M parameters (a quarter of
# the cost per sample), 4,800 steps: 22 % at lr 5e-4, 31 % at 2.5e-4. So: small, many steps, low
# lr, and numbers only; the other tasks need more than this budget. This recipe: 27.4 % exact on
# held-out numbers (training took 55 minutes on the 2-core machine while other work ran).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/monovlm-tiny}
STEPS=${STEPS:-5400}
TASKS=${TASKS:-numbers}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p monovlm
  BIN=${CARGO_TARGET_DIR:-target}/release/monovlm
fi
mkdir -p "$WORK"

"$BIN" synth --out "$WORK/train" --count $((STEPS * 16 + 400)) --seed 1 --tasks "$TASKS"
"$BIN" synth --out "$WORK/eval" --count 100 --seed 2 --tasks "$TASKS"

"$BIN" train --model assets/model-src/config.json --data "$WORK/train/data.jsonl" \
  --eval "$WORK/eval/data.jsonl" --method full --steps "$STEPS" --batch 16 --lr 2.5e-4 \
  --warmup 100 --eval-every 1800 --eval-samples 100 --checkpoint-every 1800 --seed 1 \
  --out "$WORK/run"

"$BIN" quantize "$WORK/run/model" -o assets/monovlm-tiny-q8_0.gguf --type q8_0
cp "$WORK/run/curves.png" assets/monovlm-tiny-curves.png
cp "$WORK/run/metrics.csv" assets/monovlm-tiny-metrics.csv

# Held-out figures: records from seeds the training never saw, on every generator task (the
# tasks not trained show what is still out of reach).
"$BIN" synth --out "$WORK/heldout" --count 1000 --seed 7
"$BIN" eval --model assets/monovlm-tiny-q8_0.gguf --data "$WORK/heldout/data.jsonl" \
  | tee assets/monovlm-tiny-eval.md
# ... and 1,000 of the one task it is trained for.
"$BIN" synth --out "$WORK/heldout-numbers" --count 1000 --seed 7 --tasks numbers
"$BIN" eval --model assets/monovlm-tiny-q8_0.gguf --data "$WORK/heldout-numbers/data.jsonl" \
  | tee assets/monovlm-tiny-eval-numbers.md
