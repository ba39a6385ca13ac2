#!/usr/bin/env bash
# Install llmloop into ./.venv with the given extras (default: all).
#   scripts/install.sh [EXTRAS]      e.g. scripts/install.sh dev
# torch goes in first, pinned to the CPU build (constraints.txt): an unpinned
# torch pulls several GB of CUDA packages. Re-running with nothing changed is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "llmloop needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=".venv/.llmloop-$extras"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
# The console's browser tests drive Debian's chromium (never a downloaded browser).
case ",$extras," in *,dev,*) "$(dirname "$0")/install-browser.sh" || echo "warning: no chromium; the console's browser tests will fail" >&2 ;; esac
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "installing llmloop[$extras] into .venv (first time: a few minutes)..." >&2
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
"${pip[@]}" "torch==2.13.0"
# setuptools explains what an editable install is on every one (a BuildBackendWarning
# through pip's --quiet): nothing to act on, so not shown.
PYTHONWARNINGS="ignore::UserWarning" "${pip[@]}" -c constraints.txt -e ".[$extras]"
echo "$want" > "$stamp"
