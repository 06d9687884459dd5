#!/usr/bin/env bash
# The whole test suite from a fresh machine, in one command:
#   1. installs what is missing (system packages rdkafka's build needs; the tansu broker;
#      moto's S3 server and pyarrow, into a virtualenv if the system Python is managed by apt),
#   2. starts tansu (a Kafka-compatible broker) on a free loopback port with in-memory storage,
#   3. creates the topics the tests use,
#   4. starts moto's S3 API server on a free loopback port (in memory) and creates the bucket
#      linewatch-test,
#   5. runs every workspace test with LINEWATCH_TEST_BROKERS pointing at that broker and
#      LINEWATCH_TEST_S3_ENDPOINT / LINEWATCH_TEST_S3_BUCKET / AWS_* at that S3 server
#      (scripts/s3-readback.py reads back what the tests wrote there),
#   6. checks deploy/monitoring/ with a real Prometheus (scripts/check-monitoring.sh),
#   7. stops the broker and the S3 server whatever happened, and exits with the tests' status.
# Extra arguments are passed to `cargo test` (e.g. `./scripts/test.sh -p linewatch-window`).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
TANSU_VERSION="0.6.0"
MOTO_VERSION="5.2.1"
PYARROW_VERSION="26.0.1"
S3_BUCKET="linewatch-test"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- 1. system packages (Debian) ---------------------------------------------------------
need_pkgs=()
for pkg in build-essential pkg-config cmake libssl-dev zlib1g-dev python3 python3-venv curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  log "installing system packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

# --- 2. the broker -------------------------------------------------------------------------
if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  log "installing tansu $TANSU_VERSION (several minutes, once per machine)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

port=$(free_port)
broker="127.0.0.1:$port"
workdir=$(mktemp -d -t linewatch-test.XXXXXX)
log "starting tansu on $broker (log: $workdir/tansu.log)"
tansu broker \
  --listener-url "tcp://$broker" \
  --advertised-listener-url "tcp://$broker" \
  --storage-engine memory://tansu/ >"$workdir/tansu.log" 2>&1 &
tansu_pid=$!
moto_pid=""

# stop NAME PID: TERM, up to 5 s to exit, then KILL.
# shellcheck disable=SC2317,SC2329  # invoked from cleanup (shellcheck < 0.10 says SC2317)
stop() {
  [ -n "$2" ] && kill -0 "$2" 2>/dev/null || return 0
  log "stopping $1 (pid $2)"
  kill "$2" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$2" 2>/dev/null || true
}

# shellcheck disable=SC2317,SC2329  # invoked by the trap below (shellcheck < 0.10 says SC2317)
cleanup() {
  status=$?
  stop "moto's S3 server" "$moto_pid"
  stop tansu "$tansu_pid"
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$tansu_pid" 2>/dev/null || { log "tansu exited early:"; cat "$workdir/tansu.log" >&2; exit 1; }
  sleep 0.2
done

# --- 3. topics (one list, tests/topics.txt: "name partitions") --------------------------------
while read -r topic partitions; do
  [ -z "$topic" ] || [ "${topic:0:1}" = "#" ] && continue
  tansu topic create "$topic" --broker "tcp://$broker" --partitions "$partitions" >>"$workdir/tansu.log" 2>&1 \
    || { log "could not create topic $topic"; cat "$workdir/tansu.log" >&2; exit 1; }
done < tests/topics.txt
log "topics created"

# --- 4. the S3 server (moto, in memory) and its bucket ---------------------------------------
# moto and pyarrow go into the Python that `python3` is; where apt manages that Python (PEP 668,
# no pip: a fresh Debian), into a virtualenv that is put first on PATH, so the tests' `python3`
# (scripts/s3-readback.py) finds them too.
s3_venv="${XDG_CACHE_HOME:-$HOME/.cache}/linewatch/s3-venv"
have_s3_py() { python3 -c 'import moto.server, pyarrow.fs' 2>/dev/null; }
if ! have_s3_py && [ -x "$s3_venv/bin/python3" ]; then export PATH="$s3_venv/bin:$PATH"; fi
if ! have_s3_py; then
  py_pkgs=("moto[server]==$MOTO_VERSION" "pyarrow==$PYARROW_VERSION")
  if ! python3 -m pip --version >/dev/null 2>&1 || python3 -c 'import os, sys, sysconfig
sys.exit(sys.prefix != sys.base_prefix or not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    log "creating a virtualenv for the S3 test tools at $s3_venv"
    python3 -m venv "$s3_venv"
    export PATH="$s3_venv/bin:$PATH"
  fi
  log "installing Python packages into $(python3 -c 'import sys; print(sys.prefix)'): ${py_pkgs[*]} (a minute, once per machine)"
  python3 -m pip install --quiet "${py_pkgs[@]}"
  have_s3_py || { log "moto's server or pyarrow still not importable after the install"; exit 1; }
fi

s3_port=$(free_port)
export LINEWATCH_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
log "starting moto's S3 server on $LINEWATCH_TEST_S3_ENDPOINT (log: $workdir/moto.log)"
python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$workdir/moto.log" 2>&1 &
moto_pid=$!
s3_up=""
for _ in $(seq 1 150); do
  if curl -s --noproxy '*' -o /dev/null "$LINEWATCH_TEST_S3_ENDPOINT/"; then s3_up=1; break; fi
  kill -0 "$moto_pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$s3_up" ] || { log "moto's S3 server did not come up:"; cat "$workdir/moto.log" >&2; exit 1; }
curl -sSf --noproxy '*' -o /dev/null -X PUT "$LINEWATCH_TEST_S3_ENDPOINT/$S3_BUCKET" >>"$workdir/moto.log" 2>&1 \
  || { log "could not create bucket $S3_BUCKET"; cat "$workdir/moto.log" >&2; exit 1; }
export LINEWATCH_TEST_S3_BUCKET="$S3_BUCKET"
# The object_store crate (and pyarrow, boto3) read these; AWS_ENDPOINT / AWS_ALLOW_HTTP send it
# to the loopback server in plain HTTP.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_ENDPOINT="$LINEWATCH_TEST_S3_ENDPOINT" AWS_ALLOW_HTTP=true
log "bucket $S3_BUCKET created"

# --- 5. the tests ----------------------------------------------------------------------------
export LINEWATCH_TEST_BROKERS="$broker"
# The whole suite is not an edit loop: incremental state only costs disk on a cold build
# (about 1.4 GB). Export CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "disk before the build: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free"
set +e
cargo test --workspace --locked "$@"
rc=$?
set -e
log "disk after the tests: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free (target: $(du -sh target 2>/dev/null | cut -f1))"
if [ "$rc" -ne 0 ]; then
  log "tests failed ($rc); broker log tail:"; tail -n 40 "$workdir/tansu.log" >&2
  log "S3 server log tail:"; tail -n 20 "$workdir/moto.log" >&2
fi
# --- 6. the monitoring files against a real Prometheus (whole-suite runs only) ---------------
if [ "$rc" -eq 0 ] && [ "$#" -eq 0 ]; then
  ./scripts/check-monitoring.sh || rc=$?
fi
exit "$rc"
