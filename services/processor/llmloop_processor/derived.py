"""Model files derived from installed packages, made once and cached on disk.

The processor runs models in forms cheaper than their packages ship: the
embedding model as int8 ONNX (``onnx_model.py``), the toxicity model as plain
weights (``toxicity.py``). Each is derived from what is installed, never
downloaded, in a short-lived subprocess (so the heavy libraries that read the
original never load in a long-lived process), under a lock (two first starts
at once export once), and moved into place whole.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/llmloop/KIND`` (``~/.cache/llmloop/KIND`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmloop" / kind


def cached_export(
    target: Path, command: Sequence[str], what: str, env: Mapping[str, str] | None = None
) -> Path:
    """``target``, made first if missing by ``command`` + [a temporary path beside it]."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        partial = target.with_name(f".partial-{target.name}")
        started = time.monotonic()
        log.info("deriving the %s (once, cached in %s)", what, target.parent)
        done = subprocess.run(
            [*command, str(partial)],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if done.returncode != 0 or not partial.exists():
            raise RuntimeError(f"deriving the {what} failed: {done.stderr[-2000:]}")
        os.replace(partial, target)
        log.info("%s derived in %.1f s", what, time.monotonic() - started)
    return target
