#!/usr/bin/env bash
# Builds a release `monovlm` with `--features cuda` on a machine with no GPU, no driver and no
# CUDA toolkit, for a later run on a GPU machine that has a driver but no Rust.
#
#   scripts/build-cuda-binary.sh [DIR]     # DIR defaults to /tmp/monovlm-cuda (as cuda-toolchain.sh)
#
# Prints the binary's path ($CARGO_TARGET_DIR or target/, then release/monovlm) and its NEEDED
# entries. Default compute capability 90 (H100); set CUDA_COMPUTE_CAP to change it. candle-kernels'
# builder turns 90 into sm_90a (Hopper-only features), so that binary runs on compute capability
# 9.0 GPUs only (H100, H200, GH200); build another one for other GPUs (80 for A100, …).
#
# What it links against:
# - nvcc and headers: scripts/cuda-toolchain.sh (CUDA 13.0 wheels).
# - cuBLAS, cuBLASLt, cuRAND, NVRTC and the CUDA runtime: the real libraries, taken out of NVIDIA's
#   PyPI wheels at the versions PyTorch's CUDA 13.0 build (cu130) pins. They are the oldest CUDA 13
#   releases, so the binary's versioned symbol references resolve against them or anything newer.
#   About 570 MB to download; the five .so files (about 810 MB) stay in DIR/link/lib for relinks.
# - The driver (libcuda.so.1) is not on PyPI: the link uses a stub with the same soname that defines
#   every driver function cudarc's bindings declare. It only has to satisfy the linker; at run time
#   the real driver's libcuda.so.1 is loaded instead (the stub is never shipped).
#
# At run time the GPU machine needs (nothing else; no CUDA toolkit):
# - an NVIDIA driver that supports CUDA 13.0 (>= 580): the kernels are PTX 9.0, JIT-compiled by it;
# - libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13 on
#   LD_LIBRARY_PATH. PyTorch's cu130 wheels keep them all in site-packages/nvidia/cu13/lib;
#   `pip install nvidia-cuda-runtime nvidia-cublas nvidia-curand nvidia-cuda-nvrtc` (13.x) does too.
#   A PyTorch built for CUDA 12 (nvidia/*/lib/lib*.so.12) does not fit: PyPI has no CUDA 12 nvcc.
# - libstdc++.so.6 (candle's kernels are C++).
# Measured here (2 cores shared with other work, load 5-8): 42 min cold, 1670 CPU-s; a 263 MB
# binary, of which about 175 MB is line-table debug info (`strip` it to ship).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="${1:-/tmp/monovlm-cuda}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
LINK_WHEELS=(
  nvidia-cublas==13.0.0.19
  nvidia-curand==10.4.0.35
  nvidia-cuda-nvrtc==13.0.48
  nvidia-cuda-runtime==13.0.48
)
LIBS=(libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13)

say() { echo "build-cuda-binary: $*" >&2; }

env_lines=$(scripts/cuda-toolchain.sh "$DIR")
eval "$env_lines"

LINK="$DIR/link"
STAMP="$LINK/.monovlm-wheels"
if [ "$(cat "$STAMP" 2>/dev/null)" != "${LINK_WHEELS[*]}" ]; then
  rm -rf "$LINK" "$DIR/link-wheels"
  mkdir -p "$LINK/lib/stubs"
  say "downloading ${LINK_WHEELS[*]}"
  "$DIR/venv/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$DIR/link-wheels" "${LINK_WHEELS[@]}" >&2
  # Only the shared objects are needed; headers and the rest of the wheels are left out.
  "$DIR/venv/bin/python" - "$DIR/link-wheels" "$LINK/lib" "${LIBS[@]}" <<'EOF'
import os, shutil, sys, zipfile
wheels, out, want = sys.argv[1], sys.argv[2], set(sys.argv[3:])
for name in sorted(os.listdir(wheels)):
    with zipfile.ZipFile(os.path.join(wheels, name)) as z:
        for member in z.namelist():
            base = os.path.basename(member)
            if base in want:
                with z.open(member) as src, open(os.path.join(out, base), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                want.discard(base)
if want:
    sys.exit("missing from the wheels: " + " ".join(sorted(want)))
EOF
  rm -rf "$DIR/link-wheels"
  # The linker looks for lib<name>.so; the soname inside each file is what the binary records.
  for lib in "${LIBS[@]}"; do
    ln -sf "$lib" "$LINK/lib/${lib%%.so.*}.so"
  done
  echo "${LINK_WHEELS[*]}" > "$STAMP"
fi

# libcuda.so.1 stub: one empty function per driver entry point in cudarc's bindings (the crate
# version Cargo.lock pins), so the linker resolves whichever ones candle uses.
cargo fetch --locked >/dev/null
cudarc_version=$(awk '/^name = "cudarc"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
cudarc_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version" | head -1)
grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$cudarc_src/src/driver/sys/mod.rs" | sed -E 's/^\s+fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' \
  | sort -u > "$LINK/lib/stubs/cuda_stub.c"
say "libcuda.so.1 stub: $(wc -l < "$LINK/lib/stubs/cuda_stub.c") driver functions from cudarc $cudarc_version"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/lib/stubs/libcuda.so" "$LINK/lib/stubs/cuda_stub.c"
ln -sf libcuda.so "$LINK/lib/stubs/libcuda.so.1"

# cudarc's build script adds <root>/lib and <root>/lib/stubs of every CUDA_* root variable to the
# link search path; CUDA_ROOT (the compiler) has no lib*.so link names, this one has them all.
export CUDA_TOOLKIT_ROOT_DIR="$LINK"
say "cargo build --release -p monovlm --features cuda (compute capability $CUDA_COMPUTE_CAP)"
nice -n 10 cargo build --release -p monovlm --features cuda --locked

bin="${CARGO_TARGET_DIR:-target}/release/monovlm"
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
known=$(ldconfig -p)
# Every NEEDED entry must be a real soname: ours, or one this system's loader knows (libc, libstdc++ …).
# The linker drops a library nothing references (--as-needed), so not all of ours must appear.
for soname in $needed; do
  case " libcuda.so.1 ${LIBS[*]} " in
    *" $soname "*) ;;
    *) if ! grep -q "^[[:space:]]*$soname " <<< "$known"; then
         say "$bin needs $soname, which is neither a CUDA library nor a system one"
         exit 1
       fi ;;
  esac
done
for soname in libcuda.so.1 libcudart.so.13 libcublas.so.13; do
  grep -qx "$soname" <<< "$needed" || { say "$bin does not record $soname as NEEDED"; exit 1; }
done
if readelf -d "$bin" | grep -qE 'RPATH|RUNPATH'; then
  say "$bin has an RPATH/RUNPATH pointing into this build machine"
  exit 1
fi
# What the loader would pick, with the stub standing in for the driver's libcuda.so.1.
LD_LIBRARY_PATH="$LINK/lib:$LINK/lib/stubs" ldd "$bin" >&2
say "built $bin ($(du -h "$bin" | cut -f1)); NEEDED: $(echo $needed)"
echo "$bin"
