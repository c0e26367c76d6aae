#!/usr/bin/env bash
# `make regions`: the Tokyo figure reproduced in network namespaces (bench/regions.py).
# Needs Linux and root; installs iproute2 (and PostgreSQL, git) when missing.
# Every namespace, link and process it creates is removed at the end, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" != Linux ] || [ "$(id -u)" -ne 0 ]; then
  echo "make regions needs Linux and root: it creates network namespaces (try: sudo make regions)" >&2
  exit 2
fi
EDGE_WITH_REGIONS=1 scripts/ensure-system-packages.sh
exec .venv/bin/python -m bench.regions "$@"
