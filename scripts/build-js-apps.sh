#!/usr/bin/env bash
# Regenerate the bundled Workers apps the end-to-end tests deploy
# (tests/data/js-apps/*.bundle.js) from their sources with esbuild.
# Needs node and npm; `make test` uses the committed bundles and never runs npm.
set -euo pipefail
cd "$(dirname "$0")/../tests/data/js-apps"
npm install --no-audit --no-fund --silent
for app in hono itty; do
  npx esbuild "$app-app.js" --bundle --format=esm --platform=neutral --target=es2022 \
    --legal-comments=inline --outfile="$app.bundle.js"
done
rm -rf node_modules
