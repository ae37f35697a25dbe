#!/usr/bin/env bash
# Quality report (not a test): converts the random 0.5B SOLO-shaped checkpoint of bench/run.sh to
# every GGUF type and measures each against the f32 folder with `monovlm quality` (KL divergence,
# top-1 agreement, max |Δlogit| over the reference's greedy continuation of two image prompts).
# Usage: bench/quality.sh [WORK_DIR]   (run bench/run.sh first, or it builds the checkpoint)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/monovlm-bench}
fixtures=${MONOVLM_FIXTURES:-../shared/fixtures}
bin=${CARGO_TARGET_DIR:-target}/release/monovlm
[ -f "$work/solo-0.5b-f32/model.safetensors" ] || bench/run.sh "$work"
cargo build --release -p monovlm
printf '| type | GGUF size | mean KL (nats) | max KL | top-1 agree | max abs Δlogit |\n|---|---:|---:|---:|---:|---:|\n'
for t in f16 bf16 q8_0 q6_k q5_k q4_k q4_0; do
  out="$work/solo-0.5b-$t.gguf"
  [ -f "$out" ] || "$bin" quantize "$work/solo-0.5b-f32" -o "$out" --type "$t" --quiet >/dev/null
  size=$(du -m "$out" | cut -f1)
  "$bin" quality "$work/solo-0.5b-f32" "$out" --tokens 16 \
    --image "$fixtures/solo-tiny/images/wide.png" --image "$fixtures/solo-tiny/images/tall.png" --json \
    | python3 -c "import json,sys; q=json.load(sys.stdin); print(f\"| $t | $size MiB | {q['mean_kl']:.2e} | {q['max_kl']:.2e} | {100*q['top1_agree']:.1f} % | {q['max_abs_dlogit']:.3f} |\")"
done
