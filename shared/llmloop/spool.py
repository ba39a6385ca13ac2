"""The SDK's disk spool: batches the collector could not take, kept until it can.

One gzip'd file of JSON lines per batch, written to a temporary name and
renamed, so a crash never leaves half a batch. A sender claims a file by
renaming it (``.claimed-PID``), so two processes sharing a spool never send
the same file at once; claims of dead processes are released on start. The
spool is bounded: past ``max_bytes`` the oldest batches are dropped, and said so.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("llmloop.sdk")

SUFFIX = ".jsonl.gz"
_CLAIMED = ".claimed-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """A directory of pending batches, oldest first."""

    def __init__(self, directory: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._release_dead_claims()

    def _release_dead_claims(self) -> None:
        for path in self.directory.glob(f"*{SUFFIX}{_CLAIMED}*"):
            pid = path.name.rpartition(_CLAIMED)[2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name.partition(_CLAIMED)[0]))

    def pending(self) -> list[Path]:
        """Unclaimed batch files, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def put(self, events: Sequence[bytes]) -> None:
        """Write one batch (each item one event's JSON); raises ``OSError`` if the disk refuses."""
        if not events:
            return
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        data = gzip.compress(b"\n".join(events), compresslevel=1)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a spooled event must survive a crash right after
        tmp.rename(self.directory / name)
        self._enforce_limit()

    def _enforce_limit(self) -> None:
        sizes: dict[Path, int] = {}
        for path in self.pending():
            with contextlib.suppress(OSError):  # another client may have claimed it
                sizes[path] = path.stat().st_size
        files = list(sizes)
        total = sum(sizes.values())
        for path in files[:-1]:  # never the batch just written: it is the newest data
            if total <= self.max_bytes:
                break
            try:
                with gzip.open(path) as f:
                    lost = f.read().count(b"\n") + 1
                path.unlink()
            except OSError:
                continue
            total -= sizes.get(path, 0)
            log.error(
                "llmloop spool %s is over %d bytes: dropped the oldest batch (%d events)",
                self.directory,
                self.max_bytes,
                lost,
            )

    def claim(self) -> tuple[Path, list[bytes]] | None:
        """The oldest batch, claimed for this process; None when the spool is empty."""
        for path in self.pending():
            claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # another process claimed it first
            try:
                with gzip.open(claimed) as f:
                    return claimed, f.read().split(b"\n")
            except (OSError, EOFError) as exc:
                log.error("llmloop spool file %s is unreadable, removed: %s", claimed, exc)
                claimed.unlink(missing_ok=True)
        return None

    def done(self, claimed: Path) -> None:
        """The claimed batch was delivered: forget it."""
        claimed.unlink(missing_ok=True)

    def release(self, claimed: Path) -> None:
        """The claimed batch could not be sent: leave it for later."""
        with contextlib.suppress(OSError):
            claimed.rename(claimed.with_name(claimed.name.partition(_CLAIMED)[0]))

    def count(self) -> int:
        """Batches waiting (claimed or not)."""
        return len(list(self.directory.glob(f"*{SUFFIX}*")))
