#!/usr/bin/env bash
# The README's test command, after dependencies are installed: fast checks and unit tests first,
# then the suites that need the real local cluster (started here with 2 nodes, stopped afterwards).
# Ends with one summary line, "tests: N passed, N failed", summed over every `deno test` run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH=/opt/neonvm-ts/bin:$PATH
log=$(mktemp /tmp/neonvm-ts-tests.XXXXXX)
summary() {
  # Deno prints "ok | 12 passed | 0 failed" (or "FAILED | ...") at the end of each run.
  local sums
  sums=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
    awk '/(ok|FAILED) \| [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "%d %d", p, f }')
  echo "tests: ${sums% *} passed, ${sums#* } failed"
}
cleanup() {
  local rc=$?
  deno task cluster:down >/dev/null 2>&1 || true
  summary
  rm -f "$log"
  exit $rc
}
trap cleanup EXIT
deno task ok 2>&1 | tee -a "$log"
deno task cluster:up --nodes 2
deno task test:e2e 2>&1 | tee -a "$log"
