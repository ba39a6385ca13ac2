"""``DATA_DIR/runtime.json``: how other commands reach a running ``llmloop up``.

chDB lets one process open a data dir, so while ``up`` runs, ``llmloop query``
sends its SQL to ``up`` instead of opening the store. The file holds the URL
and a random token; it is readable by its owner only, like the data itself.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE_NAME = "runtime.json"
TOKEN_HEADER = "X-Llmloop-Local-Token"


@dataclass(frozen=True)
class RuntimeInfo:
    pid: int
    api_url: str
    store_url: str
    token: str

    @classmethod
    def new(cls, api_url: str, store_url: str) -> RuntimeInfo:
        return cls(os.getpid(), api_url, store_url, secrets.token_urlsafe(32))

    def write(self, data_dir: Path) -> None:
        path = data_dir / FILE_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(asdict(self)))
        tmp.replace(path)

    @staticmethod
    def remove(data_dir: Path) -> None:
        (data_dir / FILE_NAME).unlink(missing_ok=True)

    @classmethod
    def running(cls, data_dir: Path) -> RuntimeInfo | None:
        """The live ``up`` owning ``data_dir``, or None (no file, or its process is gone)."""
        try:
            info = cls(**orjson.loads((data_dir / FILE_NAME).read_bytes()))
        except (OSError, ValueError, TypeError):
            return None
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by someone else
        return info
