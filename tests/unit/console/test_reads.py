"""Conversation lists on a real chDB store: pages by cursor, nothing skipped or repeated."""

from __future__ import annotations

import time

import pytest

from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_console.panels import Filters
from llmloop_console.reads import PAGE, conversations

pytestmark = pytest.mark.slow


def test_pages_cover_every_row_once_even_when_rows_share_a_millisecond(tmp_path):
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    # 120 completions in one millisecond, 5 of another project.
    store.command(
        "INSERT INTO completions (event_id, project_id, ts, model, prompt, completion) "
        "SELECT generateUUIDv4(number), if(number < 120, 'shop', 'other'), "
        "toDateTime64('2026-01-01 00:00:00.123', 3, 'UTC'), 'm', 'p', toString(number) "
        "FROM numbers(125)"
    )
    start = int(time.mktime((2025, 12, 31, 0, 0, 0, 0, 0, 0)))
    filters = Filters(start, start + 3 * 86400, ("shop",))
    seen, cursor, pages = [], "", 0
    while True:
        page = conversations(store, filters, before=cursor)
        seen += [r["id"] for r in page["rows"]]
        pages += 1
        if not page["next_before"]:
            break
        cursor = page["next_before"]
    store.close()
    assert pages == 3 and len(seen) == 120 == len(set(seen))
    assert PAGE == 50


def test_a_bad_cursor_is_refused(tmp_path):
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    with pytest.raises(ValueError, match="cursor"):
        conversations(store, Filters(0, 10, ("shop",)), before="123:not-a-uuid")
    store.close()
