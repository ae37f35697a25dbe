#!/usr/bin/env bash
# Benchmark (not a test): builds the random 0.5B SOLO-shaped checkpoint and runs `monovlm bench`
# on it, 1 thread, pp512 + tg64, f32 and bf16. Usage: bench/run.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/monovlm-bench}
fixtures=${MONOVLM_FIXTURES:-../shared/fixtures}
mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet numpy safetensors
fi
cargo build --release -p monovlm
for dt in f32 bf16; do
  dir="$work/solo-0.5b-$dt"
  [ -f "$dir/model.safetensors" ] || "$work/venv/bin/python" bench/make_random_solo.py "$dir" \
      --tokenizer-from "$fixtures/solo-tiny/model" --dtype "$dt"
  ./target/release/monovlm bench --model "$dir" --dtype "$dt" --threads 1 \
      --prompt-tokens 512 --gen-tokens 64 --json
done
