#!/usr/bin/env bash
# Installs a CUDA compiler (nvcc + headers) from NVIDIA's PyPI wheels, so that `--features cuda`
# builds on a machine with no CUDA toolkit and no GPU, then prints the `export` lines it needs.
#
#   eval "$(scripts/cuda-toolchain.sh [DIR])"      # DIR defaults to /tmp/monovlm-cuda
#   cargo check --release -p monovlm-runtime --features cuda --locked
#
# Why CUDA 13: PyPI's CUDA 12 compiler wheels (nvidia-cuda-nvcc-cu12, checked 12.1 to 12.9) hold
# only ptxas and libnvvm, no `nvcc` driver and no `cicc`. CUDA 13's split wheels do hold the whole
# compiler, and they all unpack into one toolkit-shaped folder, nvidia/cu13/{bin,include,lib,nvvm}:
#   nvidia-cuda-nvcc    bin/nvcc, cudafe++, ptxas, fatbinary, nvlink, nvcc.profile
#   nvidia-nvvm         nvvm/bin/cicc, nvvm/libdevice (nvcc's device front end)
#   nvidia-cuda-crt     include/crt (host_config.h …, which nvcc includes implicitly)
#   nvidia-cuda-runtime include/cuda.h, cuda_runtime.h, cuda_fp16/bf16/fp8.h, mma.h; lib/libcudart.so.13
#   nvidia-cuda-cccl    include/cccl (thrust, cub, cuda/std: candle-kernels' sort and moe kernels)
# 13.0 is the oldest CUDA 13 (the kernels' PTX runs on any driver >= 580) and cudarc 0.19 knows it
# (it reads the version from `nvcc --version`; 13.5 would be rejected).
#
# Environment:
#   CUDA_COMPUTE_CAP  GPU architecture the kernels are compiled for (default 80; 90 for H100).
#                     candle-kernels needs it because there is no nvidia-smi to ask.
#   PYTHON            interpreter used to make the pip venv (default python3)
#
# Exit status: 0 with the exports on stdout (progress goes to stderr); 2 when the wheels cannot
# be had (no python venv, PyPI unreachable): callers may treat that as "skip"; 1 for anything
# else (the wheels came but the compiler does not work), which is a real failure.
set -euo pipefail

DIR="${1:-/tmp/monovlm-cuda}"
PYTHON="${PYTHON:-python3}"
CAP="${CUDA_COMPUTE_CAP:-80}"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
ROOT="$DIR/site/nvidia/cu13"
STAMP="$DIR/site/.monovlm-wheels"

say() { echo "cuda-toolchain: $*" >&2; }

if [ -x "$ROOT/bin/nvcc" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${WHEELS[*]}" ]; then
  say "reusing $ROOT"
else
  mkdir -p "$DIR"
  if [ ! -x "$DIR/venv/bin/pip" ]; then
    if ! "$PYTHON" -m venv "$DIR/venv" >&2; then
      say "cannot create a python venv with $PYTHON (install python3-venv)"
      exit 2
    fi
  fi
  rm -rf "$DIR/wheels"
  say "downloading ${WHEELS[*]}"
  if ! "$DIR/venv/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$DIR/wheels" "${WHEELS[@]}" >&2; then
    say "could not download the wheels from PyPI"
    exit 2
  fi
  # pip (not unzip) so that the executables keep their mode bits.
  rm -rf "$DIR/site"
  "$DIR/venv/bin/pip" install --quiet --no-deps --no-index --no-compile --target "$DIR/site" "$DIR/wheels"/*.whl >&2
  rm -rf "$DIR/wheels"
  echo "${WHEELS[*]}" > "$STAMP"
fi

# Smoke test: the version line cudarc parses, and a kernel using every header family
# candle-kernels includes, compiled for the requested architecture.
version=$("$ROOT/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
if [ "$version" != "13.0" ]; then
  say "unexpected nvcc release '$version' in $ROOT"
  exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat > "$probe/probe.cu" <<'EOF'
#include <cuda.h>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <mma.h>
#include <cub/cub.cuh>
#include <thrust/device_ptr.h>
#include <cuda/std/limits>
__global__ void twice(float *x) { x[threadIdx.x] *= 2.0f; }
EOF
if ! "$ROOT/bin/nvcc" --ptx -arch="compute_$CAP" -std=c++17 -o "$probe/probe.ptx" "$probe/probe.cu" >&2; then
  say "nvcc from $ROOT cannot compile a probe kernel for compute capability $CAP"
  exit 1
fi
say "nvcc $version ready in $ROOT (compute capability $CAP)"

cat <<EOF
export CUDA_ROOT='$ROOT'
export PATH='$ROOT/bin':"\$PATH"
export CUDA_COMPUTE_CAP='$CAP'
EOF
