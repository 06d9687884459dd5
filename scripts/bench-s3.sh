#!/usr/bin/env bash
# End-to-end throughput through a real broker, Parquet on local disk against Parquet on S3:
#   1. starts tansu and moto's S3 server on free loopback ports (as scripts/test.sh does; run
#      that once first, it installs both),
#   2. fills a 3-partition readings topic with `linewatch simulate --max` (50 machines),
#   3. drains it twice with `linewatch run` (pipelines/demo.toml, two consumer groups): once
#      with sink.out and the models on local disk, once on s3://linewatch-bench/<run>/,
#   4. prints one JSON object: readings in the topic, and per run the seconds from the first
#      reading decoded to the last and the readings per second (linewatch_readings_decoded_total
#      read from /metrics twice a second).
# Usage: scripts/bench-s3.sh [path to a release linewatch binary, default target/release/linewatch]
set -euo pipefail

cd "$(dirname "$0")/.."
bin="${1:-target/release/linewatch}"
[ -x "$bin" ] || { echo "build it first: cargo build --release -p linewatch" >&2; exit 1; }
log() { printf '[bench-s3] %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
s3_venv="${XDG_CACHE_HOME:-$HOME/.cache}/linewatch/s3-venv"
python3 -c 'import moto.server' 2>/dev/null || export PATH="$s3_venv/bin:$PATH"

work=$(mktemp -d -t linewatch-bench-s3.XXXXXX)
pids=()
# shellcheck disable=SC2317,SC2329  # invoked by the trap below
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

kport=$(free_port)
broker="127.0.0.1:$kport"
tansu broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=($!)
s3port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$s3port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break
  sleep 0.2
done
for t in readings:3 inspections:3 alerts:3 readings.dlq:1 inspections.dlq:1; do
  tansu topic create "${t%%:*}" --broker "tcp://$broker" --partitions "${t##*:}" >>"$work/tansu.log" 2>&1
done
curl -sSf -o /dev/null -X PUT "http://127.0.0.1:$s3port/linewatch-bench"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT="http://127.0.0.1:$s3port" AWS_ALLOW_HTTP=true
export LINEWATCH_BROKERS="$broker" LINEWATCH__SIMULATE__MACHINES=50 RUST_LOG=warn

log "filling the readings topic (simulate --max, 20 s)"
"$bin" simulate --pipeline pipelines/demo.toml --max --duration 20s >"$work/simulate.out" 2>"$work/simulate.log"
total=$(python3 - "$broker" <<'EOF'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "bench-count"})
n = 0
for p in range(3):
    lo, hi = c.get_watermark_offsets(TopicPartition("readings", p), timeout=10)
    n += hi - lo
print(n)
EOF
) || total=0

# run NAME OUT: drains the topic in its own consumer group; prints "seconds readings".
run() {
  local name=$1 out=$2 port
  port=$(free_port)
  LINEWATCH__KAFKA__GROUP_ID="bench-$name" LINEWATCH__SINK__OUT="$out" \
    LINEWATCH__RETRAIN__MODELS_DIR="$out/models" LINEWATCH__HTTP__LISTEN="127.0.0.1:$port" \
    "$bin" run --pipeline pipelines/demo.toml >"$work/$name.log" 2>&1 &
  local pid=$!
  python3 - "$port" <<'EOF'
import re, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
def decoded():
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except Exception:
        return None
    m = re.search(r"^linewatch_readings_decoded_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0
first = last = None
value, still, start = 0.0, 0, time.time()
while time.time() - start < 600:
    v = decoded()
    now = time.time()
    if v is not None and v > value:
        value, still, last = v, 0, now
        first = first or now
    elif first is not None:
        still += 1
        if still >= 10:  # 5 s without a new reading: drained
            break
    time.sleep(0.5)
print(f"{(last - first) if first else 0:.2f} {value:.0f}")
EOF
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

log "draining to local disk"
read -r local_s local_n < <(run local "$work/out")
log "draining to S3 (moto on loopback)"
read -r s3_s s3_n < <(run s3 "s3://linewatch-bench/run-$$")
python3 - "$total" "$local_s" "$local_n" "$s3_s" "$s3_n" <<'EOF'
import json, sys
total, ls, ln, ss, sn = sys.argv[1:]
rate = lambda n, s: round(float(n) / float(s)) if float(s) > 0 else None
print(json.dumps({
    "readings_in_topic": int(total),
    "local_disk": {"seconds": float(ls), "readings": int(ln), "readings_per_s": rate(ln, ls)},
    "s3": {"seconds": float(ss), "readings": int(sn), "readings_per_s": rate(sn, ss)},
}))
EOF
