"""Memory a long-running process gives back: the embedded store's start-up code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter: the resident KiB of chDB's read-only mappings when a
# session has opened, then after page_out_code, then after the store ran queries.
# chDB loads from a copy of its library: the kernel pages out only pages that this
# process alone maps, and this test's own interpreter maps the installed one once an
# earlier test opened a store (``llmloop up`` is the one process that maps it).
_SCRIPT = textwrap.dedent(
    """
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    installed = Path(__import__("importlib.util").util.find_spec("chdb").origin).parent
    copy = Path(tempfile.mkdtemp()) / "chdb"
    copy.mkdir()
    for entry in installed.iterdir():
        if entry.is_file():  # the library, and __init__ that finds it beside itself
            shutil.copyfile(entry, copy / entry.name)
        else:
            (copy / entry.name).symlink_to(entry)
    for libs in installed.parent.glob("chdb*.libs"):  # its RPATH: $ORIGIN/../chdb_core.libs
        (copy.parent / libs.name).symlink_to(libs)
    sys.path.insert(0, str(copy.parent))

    import chdb.session

    assert Path(chdb.__file__).parent == copy

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
    shutil.rmtree(copy.parent)  # 555 MB; the mapping stays valid once unlinked
    """
)


@pytest.mark.slow  # copies the 555 MB library
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
