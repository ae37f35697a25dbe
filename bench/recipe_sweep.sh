#!/usr/bin/env bash
# The recipe search of bench/recipe-sweep.md, on a machine with an NVIDIA GPU, PyTorch, Pillow
# and `tokenizers`: data from `monovlm synth` (and a digits-only set), then one PyTorch training
# process per configuration, all at once on the one GPU. Results: /tmp/res/NAME.jsonl.
#   BIN=path/to/monovlm bench/recipe_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/monovlm}
export TOK=assets/model-src/tokenizer.json PYTHONUNBUFFERED=1
S=bench/recipe_sweep.py C=/tmp/sweep-cache
mkdir -p $C /tmp/res
# All generator tasks (half of the image records with a transcription turn) and numbers only.
for s in 1 2 3 4; do "$BIN" synth --out /tmp/sweep-d$s --count 16000 --seed $s --transcribe-ratio 0.5 --text-only-ratio 0.08 > /dev/null; done
"$BIN" synth --out /tmp/sweep-num --count 48000 --seed 11 --tasks numbers --transcribe-ratio 0.5 > /dev/null
"$BIN" synth --out /tmp/sweep-ev --count 1000 --seed 7 > /dev/null
"$BIN" synth --out /tmp/sweep-evnum --count 500 --seed 7 --tasks numbers > /dev/null
python3 - <<'PY'
import json, os
os.makedirs('/tmp/sweep-all', exist_ok=True)
with open('/tmp/sweep-all/data.jsonl', 'w') as out:
    for s in (1, 2, 3, 4):
        for l in open(f'/tmp/sweep-d{s}/data.jsonl'):
            r = json.loads(l)
            if 'image' in r: r['image'] = f'/tmp/sweep-d{s}/' + r['image']
            out.write(json.dumps(r) + '\n')
PY
python3 $S digits /tmp/sweep-dg 100000 1
python3 $S digits /tmp/sweep-dge 500 2
for P in 8 16 32; do
  PATCH=$P python3 $S prep /tmp/sweep-all $C/all$P; PATCH=$P python3 $S prep /tmp/sweep-ev $C/ev$P eval
  PATCH=$P python3 $S prep /tmp/sweep-dg $C/dg$P;  PATCH=$P python3 $S prep /tmp/sweep-dge $C/dge$P eval
done
PATCH=16 python3 $S prep /tmp/sweep-num $C/num16; PATCH=16 python3 $S prep /tmp/sweep-evnum $C/evnum16 eval

run() { python3 $S train X Y "$@" > /tmp/res/"$1".log 2>&1 & }
# 1. Every generator task, 16 px patches (the first default-model recipe): learning rates, length, size.
for lr in 3e-4 5e-4 1e-3 2e-3; do run all-lr$lr data=$C/all16 evdata=$C/ev16 lr=$lr steps=1800 eval_every=600; done
run all-long data=$C/all16 evdata=$C/ev16 lr=5e-4 steps=8000 eval_every=1000
run all-big data=$C/all16 evdata=$C/ev16 d=384 layers=8 steps=5000 eval_every=1000
run all-pos2d data=$C/all16 evdata=$C/ev16 front=pos2d steps=5000 eval_every=1000
run num16 data=$C/num16 evdata=$C/evnum16 steps=5000 eval_every=1000
wait
# 2. Digits only (96x32): what makes reading learnable at all.
for lr in 1e-4 5e-4 2e-3; do run dg16-lr$lr data=$C/dg16 evdata=$C/dge16 lr=$lr batch=32 steps=3000 eval_every=250; done
run dg8 data=$C/dg8 evdata=$C/dge8 pdim=192 lr=5e-4 batch=32 steps=3000 eval_every=250
run dg8-lr2e-3 data=$C/dg8 evdata=$C/dge8 pdim=192 lr=2e-3 batch=32 steps=3000 eval_every=250
run dg32-eve2 data=$C/dg32 evdata=$C/dge32 pdim=3072 front=eve2 lr=5e-4 batch=32 steps=3000 eval_every=250
run dg16-pos2d data=$C/dg16 evdata=$C/dge16 front=pos2d lr=5e-4 batch=32 steps=3000 eval_every=250
run dg16-small data=$C/dg16 evdata=$C/dge16 d=128 layers=4 heads=4 lr=1e-3 batch=32 steps=3000 eval_every=250
run dg16-std006 data=$C/dg16 evdata=$C/dge16 std=0.006 lr=5e-4 batch=32 steps=3000 eval_every=250
run dg16-fp32 data=$C/dg16 evdata=$C/dge16 bf16=0 lr=5e-4 batch=32 steps=3000 eval_every=250
wait
cat /tmp/res/*.jsonl
