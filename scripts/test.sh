#!/usr/bin/env bash
# The whole test suite from a fresh machine, in one command:
#   1. installs what is missing (system packages rdkafka's build needs; the tansu broker),
#   2. starts tansu (a Kafka-compatible broker) on a free loopback port with in-memory storage,
#   3. creates the topics the tests use,
#   4. runs every workspace test with LINEWATCH_TEST_BROKERS pointing at that broker,
#   5. checks deploy/monitoring/ with a real Prometheus (scripts/check-monitoring.sh),
#   6. stops the broker whatever happened, and exits with the tests' status.
# Extra arguments are passed to `cargo test` (e.g. `./scripts/test.sh -p linewatch-window`).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
TANSU_VERSION="0.6.0"

log() { printf '[test.sh] %s\n' "$*" >&2; }

# --- 1. system packages (Debian) ---------------------------------------------------------
need_pkgs=()
for pkg in build-essential pkg-config cmake libssl-dev zlib1g-dev python3 curl; do
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
broker="127.0.0.1:$port"
workdir=$(mktemp -d -t linewatch-test.XXXXXX)
log "starting tansu on $broker (log: $workdir/tansu.log)"
tansu broker \
  --listener-url "tcp://$broker" \
  --advertised-listener-url "tcp://$broker" \
  --storage-engine memory://tansu/ >"$workdir/tansu.log" 2>&1 &
tansu_pid=$!

# shellcheck disable=SC2329  # invoked by the trap below
cleanup() {
  status=$?
  if kill -0 "$tansu_pid" 2>/dev/null; then
    log "stopping tansu (pid $tansu_pid)"
    kill "$tansu_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$tansu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$tansu_pid" 2>/dev/null || true
  fi
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

# --- 4. the tests ----------------------------------------------------------------------------
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
[ "$rc" -eq 0 ] || { log "tests failed ($rc); broker log tail:"; tail -n 40 "$workdir/tansu.log" >&2; }
# --- 5. the monitoring files against a real Prometheus (whole-suite runs only) ---------------
if [ "$rc" -eq 0 ] && [ "$#" -eq 0 ]; then
  ./scripts/check-monitoring.sh || rc=$?
fi
exit "$rc"
