#!/usr/bin/env bash
# The stream's edges under stress, with figures (README, "Operations" and "Testing"):
#   - SIGKILL and SIGTERM in turn at varied moments, each followed by a restart
#     (LINEWATCH_CHAOS_ROUNDS, default 10);
#   - a second consumer joining the group mid-stream and leaving again;
#   - a flood of 100,000 malformed messages (the dead-letter rate);
#   - readings produced without a key, re-keyed (`kafka.rekey`) through 10 kills and stops;
#   - a broker outage of OUTAGE_S seconds (default 180) behind a TCP proxy.
# Each scenario prints one line `CHAOS {json}` (windows expected / written / duplicated /
# partial / missing, alerts repeated, rates) and fails unless nothing was lost, doubled or
# partial. Runs against the broker scripts/test.sh starts (and, for the outage, a tansu of its
# own); about 15 minutes on two cores once built. The short variants of the same checks run
# in the test command (tests/e2e_pipeline.rs, tests/outage.rs with a 30 s outage).
set -euo pipefail
cd "$(dirname "$0")/.."
export LINEWATCH_TEST_OUTAGE_S="${OUTAGE_S:-180}"
log=$(mktemp -t linewatch-chaos.XXXXXX)
set +e
./scripts/test.sh --release --test chaos --test outage -- \
  --include-ignored --nocapture --test-threads 1 >"$log" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || tail -n 60 "$log" >&2
echo "[chaos.sh] full log: $log" >&2
grep '^CHAOS ' "$log" || true
exit "$rc"
