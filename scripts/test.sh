#!/usr/bin/env bash
# `make test`: start the services the suite needs, run pytest, stop them.
# PostgreSQL runs privately here; each test that needs Redis starts a real
# redis-server itself (the same embedded server `edge up` uses).
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE_WITH_BROWSER=1 scripts/ensure-system-packages.sh

pgdir=$(mktemp -d /tmp/edge-test-pg.XXXXXX)
chmod 755 "$pgdir"
trap 'scripts/pg.sh stop "$pgdir"' EXIT
EDGE_TEST_POSTGRES_URL=$(scripts/pg.sh start "$pgdir")
export EDGE_TEST_POSTGRES_URL

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": for us that is a failure.
[ "$status" -eq 5 ] && echo "pytest collected no tests: failing" >&2
exit "$status"
