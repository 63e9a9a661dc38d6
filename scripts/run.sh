#!/usr/bin/env bash
# The two set-up commands of the README:
#   scripts/run.sh demo   - the whole stack on a local cluster, with a demo VM that autoscales
#   scripts/run.sh test   - the test suite (unit, then cluster and end-to-end)
# Installs what is missing first (Debian packages, Deno from npm, upstream Kubernetes binaries built
# from their Go modules into a cache outside the repo), so both work on a fresh machine.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/install_deps.sh
export PATH=/opt/neonvm-ts/bin:$PATH
case "${1:-}" in
  demo) shift; exec deno task demo "$@" ;;
  test) shift; exec bash scripts/test_all.sh "$@" ;;
  *) echo "usage: scripts/run.sh demo|test" >&2; exit 2 ;;
esac
