"""Committed JSON Schemas match the models; golden examples are valid on both sides."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import orjson
import pytest

from llmloop import schemas
from llmloop.events import EVENT_MODELS, parse_event
from llmloop_app.cli import main

EVENTS_DIR = schemas.default_dir()
EXAMPLES = sorted((EVENTS_DIR / "examples").glob("*.json"))


def test_committed_schemas_are_current(capsys):
    assert main(["schemas", "export", "--check"]) == 0
    assert "current" in capsys.readouterr().out


def test_check_fails_when_a_schema_is_stale(tmp_path: Path, capsys):
    copy = tmp_path / "events"
    shutil.copytree(EVENTS_DIR, copy)
    (copy / "metric.v1.json").write_text("{}\n")
    assert main(["schemas", "export", "--check", "--out", str(copy)]) == 1
    assert "metric.v1.json" in capsys.readouterr().err
    assert main(["schemas", "export", "--out", str(copy)]) == 0
    assert main(["schemas", "export", "--check", "--out", str(copy)]) == 0


def test_every_event_type_has_a_schema_and_an_example():
    assert {p.name for p in EVENTS_DIR.glob("*.v1.json")} == {f"{t}.v1.json" for t in EVENT_MODELS}
    assert {p.name.split(".")[0] for p in EXAMPLES} == set(EVENT_MODELS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_golden_example_is_valid_for_the_model_and_the_schema(example: Path):
    data = orjson.loads(example.read_bytes())
    event = parse_event(example.read_bytes())
    assert event.type == example.name.split(".")[0]
    schema = orjson.loads((EVENTS_DIR / f"{event.type}.v1.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_what_the_model_rejects():
    schema = orjson.loads((EVENTS_DIR / "completion.v1.json").read_bytes())
    example = orjson.loads((EVENTS_DIR / "examples" / "completion.text.json").read_bytes())
    with pytest.raises(jsonschema.ValidationError, match=r"-1 is less than the minimum"):
        jsonschema.validate({**example, "prompt_tokens": -1}, schema)
