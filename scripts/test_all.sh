#!/usr/bin/env bash
# The README's test command, after dependencies are installed: fast checks and unit tests first,
# then the suites that need the real local cluster (started here, stopped afterwards).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH=/opt/neonvm-ts/bin:$PATH
deno task ok
deno task cluster:up --nodes 2
trap 'deno task cluster:down || true' EXIT
deno task test:e2e
