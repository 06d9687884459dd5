#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run through `step "$@"`, which shellcheck cannot follow
# GPU check of the `cuda` build (issue 15), for the device machine (one GPU, no network; it runs
# in a copy of the repository root):
#   1. builds `linewatch` release with `--features cuda` and the models crate's test binaries,
#      or takes them prebuilt from $LINEWATCH_GPU_BIN (see --build-only);
#   2. runs the models crate's tests in that build with LINEWATCH_TEST_DEVICE=cuda;
#   3. runs `linewatch bench models` on CUDA and on the CPU and prints both JSON lines.
# Every step is timed; a summary closes the output. Exit status: 0 when every step passed.
#
# Usage:
#   scripts/gpu-check.sh               build if needed, test, bench (the device machine)
#   scripts/gpu-check.sh --preflight   only look: GPU, CUDA toolkit, cargo, crates, binaries
#   scripts/gpu-check.sh --build-only  build and copy the binaries into $LINEWATCH_GPU_BIN, on
#                                      any machine with cargo and a CUDA toolkit (no GPU
#                                      needed), for carrying to a machine without cargo
# Environment:
#   CUDA_ROOT          the CUDA toolkit's root (bin/nvcc, include/cuda.h); else, in order:
#                      CUDA_HOME, CUDA_PATH, the nvcc on PATH, /usr/local/cuda, /opt/cuda,
#                      python3's nvidia/cu13 wheels, scripts/check-cuda.sh's virtual environment
#   CUDA_COMPUTE_CAP   default: the GPU's (nvidia-smi), else 90 (H100/H200)
#   LINEWATCH_GPU_BIN  where the binaries are put/taken (default target/gpu-bin: ignored by git,
#                      so carry it by name)
#   CARGO_TARGET_DIR   default target/cuda (the CPU build is left alone)
#   OUT                when set, logs and the JSON lines are also written there
#   SKIP_TESTS=1, SKIP_BENCH=1, TEST_TIMEOUT (s, default 600), BENCH_TIMEOUT (s, default 300)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
MODE=run
case "${1:-}" in
  "") ;;
  --preflight) MODE=preflight ;;
  --build-only) MODE=build ;;
  -h | --help)
    sed -n '3,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

BIN="${LINEWATCH_GPU_BIN:-target/gpu-bin}"
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$REPO/$CARGO_TARGET_DIR" ;; esac
LOGS="$CARGO_TARGET_DIR/gpu-check"
mkdir -p "$LOGS"
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; fi

START=$(date +%s)
SUMMARY=()
FAILED=0
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '\n== %s\n' "$*"; }
# step NAME CMD...: runs CMD, records its time and status; never exits on failure.
step() {
  local name=$1 t0 rc=0
  shift
  say "$name"
  t0=$(now)
  "$@" || rc=$?
  SUMMARY+=("$(printf '%-44s %8ss  %s' "$name" "$(secs "$t0" "$(now)")" \
    "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)")")")
  [ "$rc" -eq 0 ] || FAILED=1
  return "$rc"
}
summary() {
  say "summary ($(($(date +%s) - START)) s in all)"
  local line
  for line in "${SUMMARY[@]}"; do echo "$line"; done
  if [ -n "${OUT:-}" ]; then printf '%s\n' "${SUMMARY[@]}" >"$OUT/summary.txt"; fi
}
die() {
  echo "gpu-check: $*" >&2
  summary
  exit 1
}

# --- header ------------------------------------------------------------------------------------
say "gpu-check ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "host: $(uname -n), $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no git)')$(git status --porcelain 2>/dev/null | grep -q . && echo ' + uncommitted changes')"
HAVE_GPU=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L; then
  HAVE_GPU=1
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader || true
else
  echo "nvidia-smi: no GPU visible"
fi
if [ "$MODE" = run ] && [ "$HAVE_GPU" = 0 ]; then
  die "no GPU here: run this on the device machine (or use --build-only / --preflight)"
fi

# --- binaries: prebuilt or to build -------------------------------------------------------------
have_prebuilt() { [ -x "$BIN/linewatch" ] && compgen -G "$BIN/tests/*" >/dev/null; }
NEED_BUILD=1
if [ "$MODE" != build ] && have_prebuilt; then
  NEED_BUILD=0
  echo "prebuilt binaries in $BIN: $(find "$BIN" -type f -printf '%P ' | head -c 300)"
fi

# --- the CUDA toolkit --------------------------------------------------------------------------
# Candidates in order; the first with bin/nvcc and include/cuda.h wins.
cuda_candidates() {
  local v py
  for v in "${CUDA_ROOT:-}" "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do [ -n "$v" ] && echo "$v"; done
  if command -v nvcc >/dev/null; then dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"; fi
  echo /usr/local/cuda
  echo /opt/cuda
  for py in python3 "${LINEWATCH_CUDA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/linewatch/cuda13}/venv/bin/python"; do
    command -v "$py" >/dev/null 2>&1 || continue
    "$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))' 2>/dev/null || true
  done
}
# find_lib NAME: prints a file that `-lNAME` can link against: lib NAME.so, else a versioned
# lib NAME.so.N (linked into the shim folder under an unversioned name).
find_lib() {
  local name=$1 d f
  for d in "${LIB_DIRS[@]}"; do
    [ -e "$d/lib$name.so" ] && { echo "$d/lib$name.so"; return 0; }
  done
  for d in "${LIB_DIRS[@]}"; do
    for f in "$d/lib$name.so".[0-9]*; do
      [ -e "$f" ] && { echo "$f"; return 0; }
    done
  done
  f="$(ldconfig -p 2>/dev/null | awk -v n="lib$name.so" '$1 == n || index($1, n ".") == 1 { print $NF; exit }')"
  [ -n "$f" ] && [ -e "$f" ] && { echo "$f"; return 0; }
  return 1
}
setup_cuda() {
  local c root="" missing=() name f shim
  while read -r c; do
    if [ -x "$c/bin/nvcc" ] && [ -f "$c/include/cuda.h" ]; then root="$c"; break; fi
    echo "  not a CUDA toolkit: $c ($([ -x "$c/bin/nvcc" ] || printf 'no bin/nvcc; ')$([ -f "$c/include/cuda.h" ] || printf 'no include/cuda.h'))"
  done < <(cuda_candidates)
  if [ -z "$root" ]; then
    echo "MISSING: a CUDA toolkit (nvcc and headers). Set CUDA_ROOT, or build elsewhere with"
    echo "  --build-only and carry $BIN (see scripts/check-cuda.sh for NVIDIA's PyPI wheels)"
    return 1
  fi
  echo "CUDA toolkit: $root"
  "$root/bin/nvcc" --version | tail -n 2 || { echo "nvcc --version failed"; return 1; }
  LIB_DIRS=()
  for c in lib64 lib targets/x86_64-linux/lib lib64/stubs lib/stubs targets/x86_64-linux/lib/stubs; do
    [ -d "$root/$c" ] && LIB_DIRS+=("$root/$c")
  done
  # The driver's libcuda: the system's, the mounted driver folder, else the toolkit's stub.
  for c in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$c" ] && LIB_DIRS+=("$c")
  done
  # Link names cudarc asks for (dynamic-linking): cuda, nvrtc, curand, cublas, cublasLt.
  shim="$CARGO_TARGET_DIR/cuda-link-shim"
  rm -rf "$shim" && mkdir -p "$shim" || return 1
  for name in cuda nvrtc curand cublas cublasLt; do
    if f="$(find_lib "$name")"; then
      echo "  -l$name: $f"
      [ "$(basename "$f")" = "lib$name.so" ] || ln -sf "$f" "$shim/lib$name.so" || return 1
    else
      missing+=("lib$name.so")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "MISSING for linking: ${missing[*]} (looked in: ${LIB_DIRS[*]} and ldconfig)"
    return 1
  fi
  export CUDA_ROOT="$root" CUDA_HOME="$root" CUDA_PATH="$root"
  export PATH="$root/bin:$PATH"
  # Link time: the shim (unversioned names) and the toolkit; run time: the toolkit's real
  # libraries, never stubs (the driver's libcuda.so.1 comes from the system).
  LIBRARY_PATH="$shim:$(IFS=:; echo "${LIB_DIRS[*]}")${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LIBRARY_PATH
  for c in lib64 lib targets/x86_64-linux/lib; do
    [ -d "$root/$c" ] && LD_LIBRARY_PATH="$root/$c${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  export LD_LIBRARY_PATH
  if [ -z "${CUDA_COMPUTE_CAP:-}" ] && [ "$HAVE_GPU" = 1 ]; then
    CUDA_COMPUTE_CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')" || true
  fi
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
  echo "CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDAFORGE_THREADS=$CUDAFORGE_THREADS CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
}

CARGO_FLAGS=(--locked)
setup_cargo() {
  if ! command -v cargo >/dev/null; then
    echo "MISSING: cargo (no Rust toolchain here). Build elsewhere with --build-only, then carry $BIN"
    return 1
  fi
  cargo --version
  rustc --version
  # With no network, every crate must already be in cargo's cache.
  if cargo metadata --locked --offline --format-version 1 >/dev/null 2>"$LOGS/metadata.err"; then
    CARGO_FLAGS+=(--offline)
    echo "crates: all in cargo's cache (${CARGO_HOME:-$HOME/.cargo}); building offline"
  else
    echo "crates: NOT all in cargo's cache (${CARGO_HOME:-$HOME/.cargo}); cargo will try the network:"
    tail -n 3 "$LOGS/metadata.err"
    export CARGO_NET_RETRY="${CARGO_NET_RETRY:-1}" CARGO_HTTP_TIMEOUT="${CARGO_HTTP_TIMEOUT:-20}"
  fi
}

# (Functions run by `step` sit in an `||` list, where `set -e` does not act: they return on
# each failure themselves.)
build() {
  local exe json="$LOGS/test-build.json"
  cargo build "${CARGO_FLAGS[@]}" --release -p linewatch --features cuda || return
  cargo test "${CARGO_FLAGS[@]}" --release -p linewatch-models --features cuda --no-run \
    --message-format=json-render-diagnostics >"$json" || return
  rm -rf "$BIN" && mkdir -p "$BIN/tests" || return
  cp "$CARGO_TARGET_DIR/release/linewatch" "$BIN/linewatch" || return
  # Test executables: compiler-artifact lines of the test profile that name an executable.
  while read -r exe; do
    cp "$exe" "$BIN/tests/" || return
  done < <(grep '"test":true' "$json" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | sort -u)
  if [ "$MODE" = build ] && command -v strip >/dev/null; then
    strip --strip-debug "$BIN/linewatch" "$BIN"/tests/* || true
  fi
  ls -l "$BIN" "$BIN/tests"
  have_prebuilt
}

if [ "$MODE" = preflight ]; then
  rc=0
  step "CUDA toolkit" setup_cuda || rc=1
  step "cargo" setup_cargo || rc=1
  if have_prebuilt; then
    echo "prebuilt: yes ($BIN)"
    if "$BIN/linewatch" bench models --help 2>/dev/null | grep -q -- '--device'; then
      echo "bench models: has --device"
    else
      echo "bench models: no --device option (it runs on the CPU only)"
    fi
  else
    echo "prebuilt: none in $BIN"
  fi
  summary
  exit "$rc"
fi

if [ "$NEED_BUILD" = 1 ]; then
  step "CUDA toolkit" setup_cuda || die "cannot build: CUDA toolkit incomplete (see MISSING above)"
  step "cargo" setup_cargo || die "cannot build: no cargo (see MISSING above)"
  step "build --release --features cuda" build || die "build failed"
else
  # Prebuilt binaries still need the toolkit's runtime libraries (cublas, nvrtc, curand).
  step "CUDA runtime libraries" setup_cuda || echo "(continuing: the system may provide them)"
fi
if [ "$MODE" = build ]; then
  echo "binaries for carrying: $BIN (name it in carry; run scripts/gpu-check.sh there)"
  summary
  exit "$FAILED"
fi
echo "linewatch binary links:"
ldd "$BIN/linewatch" | grep -E 'cuda|cublas|nvrtc|curand|not found' || true

# --- tests on CUDA -----------------------------------------------------------------------------
run_tests() {
  local exe rc=0 log="$LOGS/tests.log"
  : >"$log"
  echo "tests that read LINEWATCH_TEST_DEVICE (the others build Device::Cpu themselves):"
  grep -rl 'LINEWATCH_TEST_DEVICE\|test_device()' "$REPO/crates/linewatch-models/src" \
    "$REPO/crates/linewatch-models/tests" 2>/dev/null | sed "s|^$REPO/|  |" || echo "  none"
  for exe in "$BIN"/tests/*; do
    echo "-- $(basename "$exe")" | tee -a "$log"
    # cargo runs tests from the crate's folder; do the same.
    (cd "$REPO/crates/linewatch-models" &&
      LINEWATCH_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-600}" "$exe" 2>&1) |
      tee -a "$log" || rc=1
  done
  if [ -n "${OUT:-}" ]; then cp "$log" "$OUT/tests.log"; fi
  return "$rc"
}
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  step "models tests, LINEWATCH_TEST_DEVICE=cuda" run_tests || true
fi

# --- bench models on CUDA and on the CPU --------------------------------------------------------
BENCH_DEVICE_FLAG=0
if "$BIN/linewatch" bench models --help 2>/dev/null | grep -q -- '--device'; then
  BENCH_DEVICE_FLAG=1
fi
bench() { # bench DEVICE: last stdout line is the JSON report
  local dev=$1 args=(bench models) out="$LOGS/bench-$1.json"
  if [ "$BENCH_DEVICE_FLAG" = 1 ]; then args+=(--device "$dev"); fi
  rm -f "$out" "$out.last"
  # stdout (the report) to a file; the logs (stderr) to the terminal and a file.
  RUST_LOG="${RUST_LOG:-info}" timeout "${BENCH_TIMEOUT:-300}" "$BIN/linewatch" "${args[@]}" \
    2>&1 >"$out" | tee "$LOGS/bench-$dev.log" >&2 || return
  [ -s "$out" ] || { echo "no output"; return 1; }
  tail -n 1 "$out" >"$out.last" || return
  if [ -n "${OUT:-}" ]; then cp "$out.last" "$OUT/bench-$dev.json"; fi
}
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  if [ "$BENCH_DEVICE_FLAG" = 1 ]; then
    step "bench models --device cuda" bench cuda || true
    step "bench models --device cpu" bench cpu || true
  else
    echo
    echo "NOTE: \`linewatch bench models\` has no --device option: bench_models() runs on"
    echo "Device::Cpu, so no CUDA figures can be taken. Running it once, on the CPU."
    SUMMARY+=("$(printf '%-44s %9s  %s' "bench models on CUDA" "" "NOT RUN (bench has no --device option)")")
    FAILED=1
    step "bench models (CPU only)" bench cpu || true
  fi
  say "bench JSON lines"
  for dev in cuda cpu; do
    f="$LOGS/bench-$dev.json.last"
    if [ -s "$f" ]; then echo "BENCH_JSON device=$dev $(cat "$f")"; fi
  done
fi

summary
exit "$FAILED"
