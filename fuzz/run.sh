#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 1800, issue 11's 30 minutes) and prints, per
# target, the executions libFuzzer reports and whether it found a crash.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Toolchain: cargo-fuzz needs nightly flags (-Zsanitizer, -Cpasses=sancov-module). We use the
# installed `nightly` toolchain (`cargo +nightly fuzz ...`; rust-toolchain.toml pins 1.95.0 for the
# workspace, `+nightly` overrides it). Without a nightly, RUSTC_BOOTSTRAP=1 on the pinned stable
# compiler works too (FUZZ_TOOLCHAIN=1.95.0 below turns that on). Install cargo-fuzz with
# `cargo install cargo-fuzz --locked`.
#
# Environment:
#   FUZZ_TOOLCHAIN  rustup toolchain for the build (default: nightly)
#   SANITIZER       address (default), none, memory, thread …: passed to `cargo fuzz -s`
#   MONOVLM_FIXTURES  folder holding <family>-tiny/model (default ../shared/fixtures, then
#                   /work/shared/fixtures); image_decode and safetensors_header need it
#   JOBS            parallel targets (default 1; each target uses one core)
#
# What a run finds lands in fuzz/artifacts/<target>/; the corpus grows in fuzz/work/<target>/
# (both git-ignored); fuzz/corpus/<target>/ holds the committed seeds and is only read.
# Logs: fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_EACH="${1:-1800}"
shift || true
ALL=(gguf safetensors_header image_decode jsonl chat_request sequence model_files)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
SAN="${SANITIZER:-address}"
JOBS="${JOBS:-1}"
export CARGO_TARGET_DIR="$PWD/target"
if [ "$TOOLCHAIN" != nightly ]; then
  export RUSTC_BOOTSTRAP=1
fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
cargo "+$TOOLCHAIN" fuzz build -O -s "$SAN"

mkdir -p logs artifacts
run_one() {
  local t="$1"
  mkdir -p "artifacts/$t" "work/$t"
  # -rss_limit_mb: an input that makes us allocate more than 4 GiB is a finding (a missing cap).
  # -timeout: one input taking over 60 s is a finding too (a missing work cap).
  # -max_len: large enough for the seed images and a small model folder.
  set +e
  cargo "+$TOOLCHAIN" fuzz run -O -s "$SAN" "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=60 -max_len=262144 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1
  local rc=$?
  set -e
  local execs
  execs=$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}' | tail -1)
  local found
  found=$(find "artifacts/$t" -type f | wc -l)
  printf '%-20s seconds=%-6s executions=%-10s exit=%-3s artifacts=%s\n' \
    "$t" "$SECONDS_EACH" "${execs:-?}" "$rc" "$found"
}

export -f run_one
export SECONDS_EACH TOOLCHAIN SAN
if [ "$JOBS" -gt 1 ]; then
  printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
else
  for t in "${TARGETS[@]}"; do run_one "$t"; done
fi
echo "logs in fuzz/logs/, crashing inputs (if any) in fuzz/artifacts/<target>/"
