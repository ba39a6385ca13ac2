"""Memory a long-running process gives back: the embedded store's start-up code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter: the resident KiB of chDB's read-only mappings when a
# session has opened, then after page_out_code, then after the store ran queries.
_SCRIPT = textwrap.dedent(
    """
    import tempfile
    from pathlib import Path

    import chdb.session

    from llmloop.lifecycle import page_out_code

    def resident(library):
        total, path = 0, ""
        for line in Path("/proc/self/smaps").read_text().splitlines():
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                path = fields[5] if len(fields) > 5 and "w" not in fields[1] else ""
            elif fields[0] == "Rss:" and library in path:
                total += int(fields[1])
        return total

    session = chdb.session.Session(tempfile.mkdtemp())
    opened = resident("_chdb")
    released = page_out_code("_chdb")
    after = resident("_chdb")
    session.query("CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a")
    session.query("INSERT INTO t SELECT number FROM numbers(1000)")
    assert session.query("SELECT sum(a) FROM t", "CSV").bytes().strip() == b"499500"
    print(opened, released, after, resident("_chdb"))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and MADV_PAGEOUT")
def test_the_embedded_stores_start_up_code_is_given_back_and_runs_again() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    opened, released_mib, after, used = (int(x) for x in out)
    # Most of what start-up touched goes; what queries run comes back (and they work).
    assert opened > 100 * 1024
    assert after < opened / 4
    assert released_mib >= (opened - after) // 1024 // 2
    assert after < used < opened
