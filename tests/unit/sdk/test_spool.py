"""The disk spool: batches in order, claims between processes, a bounded size."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from llmloop.delivery import Verdict, judge
from llmloop.retry import backoff
from llmloop.spool import Spool


def test_batches_come_back_oldest_first_and_leave_when_done(tmp_path):
    spool = Spool(tmp_path)
    spool.put([b'{"a":1}', b'{"a":2}'])
    spool.put([b'{"b":1}'])
    first = spool.claim()
    assert first is not None and first[1] == [b'{"a":1}', b'{"a":2}']
    second = Spool(tmp_path).claim()  # another client on the same spool gets the next one
    assert second is not None and second[1] == [b'{"b":1}']
    assert spool.claim() is None
    spool.release(second[0])
    spool.done(first[0])
    assert spool.count() == 1 and spool.claim()[1] == [b'{"b":1}']


def test_claims_of_a_dead_process_are_released(tmp_path):
    spool = Spool(tmp_path)
    spool.put([b"{}"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = spool.pending()[0]
    path.rename(path.with_name(f"{path.name}.claimed-{dead}"))
    assert spool.pending() == []
    assert Spool(tmp_path).claim() is not None  # a new client picks it up
    mine = next(tmp_path.glob("*.claimed-*"))
    assert mine.name.endswith(f".claimed-{os.getpid()}")


def test_a_full_spool_drops_the_oldest_batch_and_says_so(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=1)
    spool.put([b'{"old":1}'] * 3)
    with caplog.at_level(logging.ERROR, "llmloop.sdk"):
        spool.put([b'{"new":1}'])
    assert spool.claim()[1] == [b'{"new":1}']
    assert "dropped the oldest batch (3 events)" in caplog.text


def test_answers_decide_what_happens_to_a_batch(caplog):
    assert judge(202, {}, b"{}", 5).verdict is Verdict.DELIVERED
    partial = b'{"errors":[{"event_id":"e1","field":"model","message":"too short"}]}'
    assert judge(207, {}, partial, 5).verdict is Verdict.DELIVERED
    assert "rejected event e1: model: too short" in caplog.text
    assert judge(413, {}, b"", 5).verdict is Verdict.SPLIT
    assert judge(401, {}, b"", 5).verdict is Verdict.HOLD
    busy = judge(503, {"retry-after": "3"}, b"", 5)
    assert busy.verdict is Verdict.RETRY and busy.retry_after_s == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    dated = judge(503, {"retry-after": later}, b"", 5).retry_after_s  # an HTTP-date
    assert dated is not None and 25 < dated <= 30
    assert judge(503, {"retry-after": "soon"}, b"", 5).retry_after_s is None
    assert judge(503, {"retry-after": "3600"}, b"", 5).retry_after_s == 60.0  # capped
    assert judge(429, {}, b"", 5).verdict is Verdict.RETRY
    assert judge(400, {}, b"bad", 5).verdict is Verdict.DELIVERED  # resending cannot help
    assert "dropped 5 events: the collector answered 400" in caplog.text


def test_backoff_is_jittered_capped_and_respects_retry_after():
    delays = [backoff(10, 0.5, 4.0) for _ in range(200)]
    assert max(delays) <= 4.0 and len(set(delays)) > 100
    assert backoff(0, 0.5, 4.0, hint_s=3.0) >= 3.0
