#!/usr/bin/env bash
# Type-checks the `cuda` build (`--features cuda`: candle's CUDA backend, our device code) on a
# machine with no GPU and no CUDA toolkit, then runs clippy on it. Nothing is linked or run: a
# GPU is still needed to see the CUDA numbers. candle-kernels compiles its kernels with nvcc
# and cudarc asks `nvcc --version` which CUDA API to bind, so a real compiler is needed: the
# toolkit comes from NVIDIA's pinned PyPI wheels (CUDA 13.0; the -cu12 wheels ship no nvcc),
# installed once into a virtual environment outside the repository:
#   $LINEWATCH_CUDA_TOOLS (default ~/.cache/linewatch/cuda13), about 1.2 GB.
# Builds go to target/cuda so the CPU build is left alone. A cold run takes about 13 minutes
# on two cores, most of it nvcc compiling candle's kernels for CUDA_COMPUTE_CAP (default 90).
# Usage: scripts/check-cuda.sh
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS="${LINEWATCH_CUDA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/linewatch/cuda13}"
WHEELS=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-cublas==13.1.1.3"
  "nvidia-curand==10.4.0.35"
)

if [ ! -x "$TOOLS/venv/bin/python" ]; then
  python3 -m venv "$TOOLS/venv"
fi
"$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${WHEELS[@]}"
# The wheels share one folder laid out like a toolkit root (bin, include, lib, nvvm).
ROOT="$("$TOOLS/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[ -x "$ROOT/bin/nvcc" ] || { echo "no nvcc under $ROOT" >&2; exit 1; }

export CUDA_ROOT="$ROOT" CUDA_HOME="$ROOT" CUDA_PATH="$ROOT"
export PATH="$ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
nvcc --version | tail -n 2

cargo check --locked -p linewatch --features cuda
cargo clippy --locked -p linewatch --features cuda -- -D warnings
echo "cuda build type-checks and is clippy-clean"
