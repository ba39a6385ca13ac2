#!/usr/bin/env bash
# Install llmloop and run it locally with demo traffic: API on http://127.0.0.1:7070.
#   scripts/up.sh [more `llmloop up` options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh all
exec .venv/bin/llmloop up --demo "$@"
