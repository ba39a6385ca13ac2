"""Shutting a service down in order: SIGINT / SIGTERM set an event instead of killing.

Every long-running command (``up``, ``processor``, ``alerting``, ``retraining``)
finishes the batch in hand, commits, and closes its adapters when told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import platform
import signal
from collections.abc import AsyncIterator
from pathlib import Path

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
_MADV_PAGEOUT = 21  # Linux 5.4+ (asm-generic/mman-common.h)

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event that SIGINT or SIGTERM sets while the block runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


def tune_gc() -> None:
    """Collect less often in a process that handles batches of events.

    A batch makes thousands of short-lived objects; with the default gen-0 threshold
    (700) the collector runs many times per request and per consumed batch. The
    start-up heap is frozen (never scanned again) and gen 0 waits for 50,000
    allocations: less CPU, no memory growth that matters (bench/ingest.py).
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def tune_memory() -> None:
    """Give memory back once a busy moment is over, in a process that stays up.

    * glibc: big blocks (Arrow batches, numpy windows, request bodies) always get
      pages of their own, returned when freed. By default the threshold for that
      rises to the largest block freed so far, after which such blocks are carved
      out of the heap, which fragments and never shrinks. At most two arenas: every
      thread (the store's, the event loop's, ``to_thread``'s) would otherwise get
      one of its own.
    * Arrow allocates from the system allocator, so its buffers follow the same
      rule (its mimalloc pool kept what the busiest batch asked for).

    Call it first, before threads start. ``llmloop up`` on 2 cores: bench/up_load.py.
    """
    if platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    try:
        import pyarrow as pa
    except ImportError:  # a service without the store extra
        return
    pa.set_memory_pool(pa.system_memory_pool())
    log.debug("allocators tuned: glibc mmap threshold 256 KiB, 2 arenas; Arrow on malloc")


def page_out_code(library: str) -> int:
    """Drop this process's resident pages of ``library``'s read-only mappings; returns MiB.

    For a library whose start-up runs far more of its code than it runs later: chDB's
    engine registers every function, format and table engine when its session opens,
    which leaves ~290 MiB of its 555 MiB library resident, of which ~100 MiB runs
    again under load (the rest is paged back in if it ever runs). Those are clean pages
    of the file, which the kernel drops under memory pressure anyway; RSS (what
    ``top``, a container's limit and the 1.2 GiB goal of ``llmloop up`` count) keeps
    them until then. Linux only; elsewhere, or on a kernel without MADV_PAGEOUT, 0.
    """
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    before = _rss_kib()
    for line in maps:
        fields = line.split()
        if len(fields) < 6 or library not in fields[5] or "w" in fields[1]:
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if libc.madvise(low, high - low, _MADV_PAGEOUT) != 0:
            return 0  # EINVAL: a kernel before 5.4
    released = max(0, before - _rss_kib()) // 1024
    log.debug("paged out %d MiB of %s's start-up code", released, library)
    return released


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
