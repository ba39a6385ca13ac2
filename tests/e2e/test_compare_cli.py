"""`llmloop compare` as a user runs it: thumbs on two model versions through `llmloop up`,
the comparison read through up, then with up stopped, straight from the store.

Known truth: version v1 gets a thumbs up with probability 0.50, v2 with 0.75 and v3
(a copy of v1's behaviour) with 0.50, drawn with a fixed seed. The comparison must
cover the true difference (+0.25) with its interval and call it significant; v1 against
v3 must stay non-significant at every one of the looks taken while traffic arrives
(the repeated-looks error rate itself is simulated in tests/unit/processor/test_compare.py:
200 experiments x 30 looks).
"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from llmloop.testing.up import LLMLOOP, Up, wait_for

RATES = {"v1": 0.50, "v2": 0.75, "v3": 0.50}
PER_VERSION = 400
LOOKS = 4


def traffic(rng: random.Random, n: int) -> list[dict]:
    events: list[dict] = []
    for version, rate in RATES.items():
        for i in range(n):
            cid = str(uuid.uuid4())
            events.append(
                {
                    "type": "completion",
                    "event_id": cid,
                    "model": "chat",
                    "model_version": version,
                    "prompt": f"question {version} {i} {rng.random()}",
                    "completion": f"answer {i}",
                    "latency_ms": rng.gauss(200 if version == "v2" else 180, 20),
                }
            )
            events.append(
                {
                    "type": "feedback",
                    "kind": "thumbs",
                    "event_id": str(uuid.uuid4()),
                    "completion_id": cid,
                    "value": 1 if rng.random() < rate else -1,
                }
            )
    return events


def compare(data_dir: Path, a: str, b: str, *extra: str) -> dict:
    done = subprocess.run(
        [
            LLMLOOP,
            "compare",
            "--model",
            "chat",
            "--a",
            a,
            "--b",
            b,
            "--json",
            *extra,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["outcomes"]


@pytest.mark.slow
def test_compare_reports_a_known_difference_and_no_false_one(tmp_path: Path):
    data_dir = tmp_path / "data"
    up = Up(data_dir)
    rng = random.Random(2026)
    try:
        step = PER_VERSION // LOOKS
        for look in range(1, LOOKS + 1):
            assert up.post(traffic(rng, step)).status_code == 202
            wait_for(
                data_dir,
                "SELECT count() FROM feedback",
                str(look * step * len(RATES)),
                timeout=60,
            )
            null = compare(data_dir, "v1", "v3", "--outcome", "thumbs_up")["thumbs_up"]
            assert null["a"]["n"] == null["b"]["n"] == look * step
            assert not null["significant"], (look, null)
        out = compare(data_dir, "v1", "v2")
        thumbs = out["thumbs_up"]
        assert thumbs["a"]["n"] == thumbs["b"]["n"] == PER_VERSION
        low, high = thumbs["interval"]
        assert low <= RATES["v2"] - RATES["v1"] <= high
        assert thumbs["significant"] and low > 0 and not thumbs["b_worse"]
        for side, version in (("a", "v1"), ("b", "v2")):
            lo, hi = thumbs[side]["interval"]
            assert lo <= RATES[version] <= hi
        # Negative feedback is the thumbs down here: B is better, the mirror image.
        negative = out["negative_feedback"]
        assert negative["difference"] == pytest.approx(-thumbs["difference"])
        # Latency: v2 is 20 ms slower by construction: significantly worse.
        latency = out["latency_ms"]
        assert latency["interval"][0] <= 20 <= latency["interval"][1] and latency["b_worse"]
        # Nothing was scored: too little data on both sides, said as such.
        assert out["mean_score"] is None
    finally:
        assert up.stop() == 0
    # With up stopped, compare opens the store itself; the table form names the verdicts.
    table = subprocess.run(
        [
            LLMLOOP,
            "compare",
            "--model",
            "chat",
            "--a",
            "v1",
            "--b",
            "v2",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[2:]}
    assert lines["thumbs_up"].endswith("B better") and lines["latency_ms"].endswith("B worse")
    assert "fewer than 2 observations" in lines["mean_score"]
    missing = subprocess.run(
        [
            LLMLOOP,
            "compare",
            "--model",
            "chat",
            "--a",
            "x1",
            "--b",
            "x2",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no completions of model 'chat'" in missing.stderr
