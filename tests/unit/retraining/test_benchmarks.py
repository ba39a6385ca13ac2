"""Benchmark task sets: validated, content-addressed, the newest per name scored for a model."""

from __future__ import annotations

import json

import pytest

from llmloop_retraining import benchmarks
from llmloop_retraining.datasets import DatasetError, versions


def write(path, rows) -> object:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_add_is_content_addressed_and_normalises_references(tmp_path):
    src = write(
        tmp_path / "qa.jsonl",
        [
            {"prompt": "2+2?", "reference": "4"},
            {"prompt": [{"role": "user", "content": "hi"}], "references": ["hello", "hi"]},
        ],
    )
    root = tmp_path / "datasets"
    first = benchmarks.add(root, "qa", src)
    again = benchmarks.add(root, "qa", src)
    assert first.version == again.version and first.version.startswith("qa-")
    assert first.manifest["tasks"] == 2 and first.manifest["model"] is None
    tasks = [json.loads(line) for line in (first.path / "tasks.jsonl").read_text().splitlines()]
    assert tasks[0]["references"] == ["4"] and tasks[1]["references"] == ["hello", "hi"]
    write(src, [{"prompt": "2+2?", "reference": "four"}])
    changed = benchmarks.add(root, "qa", src)
    assert changed.version != first.version
    assert [b.version for b in benchmarks.versions(root, "qa")] == [changed.version, first.version]
    # Benchmarks share the datasets folder but are never taken for preference datasets.
    assert versions(root) == []


def test_for_model_takes_the_newest_applicable_version_of_each_name(tmp_path):
    root = tmp_path / "datasets"
    src = tmp_path / "t.jsonl"
    benchmarks.add(root, "qa", write(src, [{"prompt": "a", "reference": "1"}]))
    newest = benchmarks.add(root, "qa", write(src, [{"prompt": "a", "reference": "2"}]))
    only_m2 = benchmarks.add(
        root, "m2-task", write(src, [{"prompt": "b", "reference": "3"}]), model="m2"
    )
    assert [b.version for b in benchmarks.for_model(root, "m1")] == [newest.version]
    assert [b.version for b in benchmarks.for_model(root, "m2")] == [
        only_m2.version,
        newest.version,
    ]
    entry = newest.job_entry()
    assert entry == {"name": "qa", "version": newest.version, "path": str(newest.path)}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "a"}], "line 1: 'reference' must be a non-empty string"),
        ([{"reference": "a"}], "line 1: each line needs a 'prompt'"),
        ([{"prompt": "", "reference": "x"}], "'prompt' must be text"),
        ([], "holds no tasks"),
    ],
)
def test_bad_files_are_refused_with_the_line(tmp_path, rows, message):
    with pytest.raises(DatasetError, match=message):
        benchmarks.add(tmp_path, "qa", write(tmp_path / "b.jsonl", rows))


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="benchmark name"):
        benchmarks.add(tmp_path, "../x", tmp_path / "missing.jsonl")
