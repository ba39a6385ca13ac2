"""JSON Schema files for every v1 event, generated from the models.

``llmloop schemas export`` writes them; ``--check`` fails when a committed file
differs from what the models say, so the files never drift from the code.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import TypeAdapter

from llmloop.events import EVENT_MODELS


def default_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("llmloop_schemas") / "events"))


def render() -> dict[str, bytes]:
    """File name -> content of every event schema."""
    files = {}
    for wire_type, model in EVENT_MODELS.items():
        schema = TypeAdapter(model).json_schema()
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://llmloop.dev/schemas/events/{wire_type}.v1.json",
            "title": schema.get("title", wire_type),
            **schema,
        }
        files[f"{wire_type}.v1.json"] = (
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
    return files


def stale(directory: Path) -> list[str]:
    """Files under ``directory`` that are missing or differ from the models."""
    return [
        name
        for name, content in render().items()
        if not (directory / name).exists() or (directory / name).read_bytes() != content
    ]


def export(directory: Path) -> list[str]:
    """Write every schema; returns the names of files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale(directory)
    for name, content in render().items():
        if name in changed:
            (directory / name).write_bytes(content)
    return changed
