"""Dataset versions: content-addressed, stable splits, manifests, export formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from llmloop_retraining import datasets
from llmloop_retraining.pairs import Pair


def pairs(n: int, chat: bool = False) -> list[Pair]:
    now = datetime.now(UTC)
    return [
        Pair(
            "p1",
            "org/m:1",
            "thumbs",
            [{"role": "user", "content": f"q{i}"}] if chat else f"q{i}",
            f"good {i}",
            f"bad {i}",
            (f"e{i}",),
            now,
        )
        for i in range(n)
    ]


def test_the_same_pairs_make_the_same_version_and_files_never_change(tmp_path):
    first = datasets.cut(tmp_path, "org/m:1", pairs(40), drops={"toxic_chosen": 2})
    again = datasets.cut(tmp_path, "org/m:1", list(reversed(pairs(40))))
    assert again.version == first.version and first.version.startswith("org_m_1-")
    m = first.manifest
    assert m["counts"]["pairs"] == 40 and m["counts"]["train"] + m["counts"]["eval"] == 40
    assert m["counts"]["dropped"] == {"toxic_chosen": 2}
    assert m["counts"]["by_source"] == {"thumbs": 40}
    assert len(m["source_event_ids"]) == 40 and len(m["sha256"]) == 64
    assert len(first.rows("train")) == m["counts"]["train"]
    assert [v.version for v in datasets.versions(tmp_path)] == [first.version]


def test_a_held_out_pair_stays_held_out_in_later_versions(tmp_path):
    small = datasets.cut(tmp_path, "m", pairs(40))
    big = datasets.cut(tmp_path, "m", pairs(120))
    assert big.version != small.version
    held_small = {r["pair_id"] for r in small.rows("eval")}
    train_big = {r["pair_id"] for r in big.rows("train")}
    assert held_small and not held_small & train_big


def test_no_pairs_is_a_clear_error(tmp_path):
    with pytest.raises(datasets.DatasetError, match="no preference pairs for model 'm'"):
        datasets.cut(tmp_path, "m", [])


def test_load_by_prefix_and_unknown_version(tmp_path):
    v = datasets.cut(tmp_path, "m", pairs(10))
    assert datasets.load(tmp_path, v.version[:8]).version == v.version
    with pytest.raises(datasets.DatasetError, match="no dataset version 'nope'"):
        datasets.load(tmp_path, "nope")


def test_export_formats():
    row = {
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "chosen": "hello",
        "rejected": "go away",
    }
    [trl] = datasets.export_rows([row], "trl")
    assert trl == {"prompt": "system: be brief\nuser: hi", "chosen": "hello", "rejected": "go away"}
    [chat] = datasets.export_rows([row], "trl-chat")
    assert chat["prompt"] == row["prompt"]
    assert chat["chosen"] == [{"role": "assistant", "content": "hello"}]
    [openai] = datasets.export_rows([{**row, "prompt": "hi"}], "openai")
    assert openai == {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    json.dumps(openai)
