#!/usr/bin/env bash
# The README's test command, after dependencies are installed: fast checks and unit tests first,
# then the suites that need the real local cluster (started here with 2 nodes, stopped afterwards).
# Ends with one summary line, "tests: N passed, N failed", summed over every `deno test` run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH=/opt/neonvm-ts/bin:$PATH
unit_log=$(mktemp /tmp/neonvm-ts-unit.XXXXXX)
e2e_log=$(mktemp /tmp/neonvm-ts-e2e.XXXXXX)
summary() {
  # Unit tests end with deno test's "ok | 12 passed | 0 failed"; the e2e runner ends with
  # "e2e: N passed, N failed" (a file that passed on its retry counts once).
  local u e
  u=$(sed 's/\x1b\[[0-9;]*m//g' "$unit_log" 2>/dev/null |
    awk '/^(ok|FAILED) \| [0-9]+ passed/ { p = $3; f = $6 } END { printf "%d %d", p, f }' || true)
  e=$(awk '/^e2e: [0-9]+ passed, [0-9]+ failed$/ { p = $2; f = $4 } END { printf "%d %d", p, f }' "$e2e_log" 2>/dev/null || true)
  u=${u:-0 0}
  e=${e:-0 0}
  echo "tests: $(( ${u% *} + ${e% *} )) passed, $(( ${u#* } + ${e#* } )) failed"
}
cleanup() {
  local rc=$?
  deno task cluster:down >/dev/null 2>&1 || true
  summary
  rm -f "$unit_log" "$e2e_log"
  exit $rc
}
trap cleanup EXIT
deno task ok 2>&1 | tee "$unit_log"
deno task cluster:up --nodes 2
deno task test:e2e 2>&1 | tee "$e2e_log"
