#!/usr/bin/env bash
# Checks deploy/monitoring/ against a real Prometheus (Debian's package, installed if missing):
#   1. `promtool check rules` and the rules' unit tests (`promtool test rules`);
#   2. the PrometheusRule manifest holds exactly those rules (`--write` regenerates it), and the
#      Grafana dashboard is valid JSON whose panels all have queries;
#   3. a running `linewatch demo` is scraped by Prometheus every second, and every metric name
#      the rules and the dashboard use must be among the names Prometheus stored.
# Called by scripts/test.sh after the cargo tests (it uses their debug build of the binary, or
# LINEWATCH_BIN); runs alone too: ./scripts/check-monitoring.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[check-monitoring] %s\n' "$*" >&2; }

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  log "installing Debian's prometheus (promtool and the server)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

mon=deploy/monitoring
# The PrometheusRule's spec is the rules file, indented (one source of truth).
prometheusrule() {
  printf '%s\n' \
    "# The alerting rules of deploy/monitoring/linewatch-rules.yml as a PrometheusRule (Prometheus" \
    "# Operator): its \`spec\` is that file, indented. ./scripts/check-monitoring.sh --write" \
    "# regenerates it; the check fails when the two differ." \
    "apiVersion: monitoring.coreos.com/v1" "kind: PrometheusRule" "metadata:" "  name: linewatch" \
    "  labels:" "    app.kubernetes.io/name: linewatch" "    role: alert-rules" "spec:"
  sed -n '/^groups:/,$p' "$mon/linewatch-rules.yml" | sed -E 's/^(.+)$/  \1/'
}
if [ "${1:-}" = "--write" ]; then
  prometheusrule >"$mon/prometheusrule.yaml"
  log "wrote $mon/prometheusrule.yaml"
  exit 0
fi
diff -u "$mon/prometheusrule.yaml" <(prometheusrule) >&2 \
  || { log "$mon/prometheusrule.yaml differs from the rules: run $0 --write"; exit 1; }
promtool check rules "$mon/linewatch-rules.yml"
(cd "$mon" && promtool test rules linewatch-rules.test.yml)
python3 - "$mon/linewatch-dashboard.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["panels"], "no panels"
for p in d["panels"]:
    assert p.get("targets") and all(t.get("expr") for t in p["targets"]), f"panel {p.get('title')} has no query"
print(f"[check-monitoring] dashboard: {len(d['panels'])} panels, every one with a query", file=sys.stderr)
EOF

bin="${LINEWATCH_BIN:-target/debug/linewatch}"
[ -x "$bin" ] || cargo build -q -p linewatch
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
work=$(mktemp -d -t linewatch-monitoring.XXXXXX)
metrics_port=$(free_port)
prom_port=$(free_port)
pids=()
# shellcheck disable=SC2329  # invoked by the trap below
cleanup() {
  status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$status" -eq 0 ] || { log "failed; logs:"; tail -n 20 "$work"/*.log >&2 || true; }
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

LINEWATCH__HTTP__LISTEN="127.0.0.1:$metrics_port" RUST_LOG=warn \
  "$bin" demo --duration 60s --no-progress --out "$work/out" >"$work/demo.log" 2>&1 &
pids+=($!)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$mon/linewatch-rules.yml
scrape_configs:
  - job_name: linewatch
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

want=$(grep -oh 'linewatch_[a-z_]*' "$mon/linewatch-rules.yml" "$mon/linewatch-dashboard.json" | sort -u)
# Until every name is stored (the demo needs its first model and first alerts for some), at
# most 75 s.
for _ in $(seq 1 75); do
  sleep 1
  have=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/label/__name__/values" 2>/dev/null \
    | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["data"]))' 2>/dev/null || true)
  missing=$(comm -23 <(echo "$want") <(echo "$have" | sort -u))
  [ -z "$missing" ] && break
done
rules=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/rules" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]["groups"]; print(sum(len(g["rules"]) for g in d))')
if [ -n "$missing" ]; then
  log "metrics used by the rules or the dashboard but not exported by linewatch:"
  echo "$missing" >&2
  exit 1
fi
log "Prometheus $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f3) scraped linewatch demo: all $(echo "$want" | wc -l) metric names used by the rules and the dashboard exist; $rules rules loaded"
