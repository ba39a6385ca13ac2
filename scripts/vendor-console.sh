#!/usr/bin/env bash
# Reproduce the vendored browser files from npm (pinned in scripts/vendor/package.json,
# locked in package-lock.json): uPlot for the console's charts, Swagger UI for the
# API docs page that ingest serves at /docs.
#   scripts/vendor-console.sh
# The built files are committed, so installing llmloop needs neither npm nor the
# internet, and the console loads nothing from a CDN.
set -euo pipefail
cd "$(dirname "$0")/vendor"
console=../../services/console/llmloop_console/static/vendor
ingest=../../services/ingest/llmloop_ingest/static
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp package.json "$work/"
[ -f package-lock.json ] && cp package-lock.json "$work/"
(cd "$work" && if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi)
[ -f package-lock.json ] || cp "$work/package-lock.json" .
mkdir -p "$console" "$ingest"
m="$work/node_modules"
cp "$m/uplot/dist/uPlot.iife.min.js" "$m/uplot/dist/uPlot.min.css" "$console/"
cp "$m/uplot/LICENSE" "$console/uPlot.LICENSE"
cp "$m/swagger-ui-dist/swagger-ui-bundle.js" "$m/swagger-ui-dist/swagger-ui.css" "$ingest/"
cp "$m/swagger-ui-dist/LICENSE" "$ingest/swagger-ui.LICENSE"
(cd "$console" && sha256sum uPlot.iife.min.js uPlot.min.css > SHA256SUMS)
(cd "$ingest" && sha256sum swagger-ui-bundle.js swagger-ui.css > SHA256SUMS)
cat "$console/SHA256SUMS" "$ingest/SHA256SUMS"
