#!/usr/bin/env bash
# Installs the Debian packages that `make test` and `make run` need, when missing:
# git (the real client the end-to-end tests push with), PostgreSQL (the
# at-scale database the store is tested against), nftables (the egress policy
# for Python functions when the platform runs as root), with EDGE_WITH_BROWSER=1
# (`make test`) Chromium (the headless browser the dashboard tests drive with
# Playwright, whose own browser download is not used), and with EDGE_WITH_BENCH=1
# wrk (the bench's load generator). Needs root or sudo; does nothing when
# everything is present.
set -euo pipefail

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
if [ "${EDGE_WITH_BROWSER:-0}" = 1 ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ "${EDGE_WITH_BENCH:-0}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
