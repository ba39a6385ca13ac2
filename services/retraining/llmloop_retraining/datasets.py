"""Versioned preference datasets: content-addressed files under the data dir.

A version is a folder ``DATA_DIR/datasets/<model>/<version>/`` with
``train.jsonl`` and ``eval.jsonl`` (TRL's plain preference format, one pair a
line) and ``manifest.json`` (source event ids, counts, filters and drops, hash,
created at). The version id is the hash of its pairs, so cutting the same pairs
twice yields the same version, and a version's files never change.

The train / eval split is decided per pair by its id (a hash), not by a random
draw: a pair held out once stays held out in every later, larger version, so a
model is never evaluated on pairs an earlier version trained it on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from llmloop_retraining.pairs import Pair

ExportFormat = Literal["trl", "trl-chat", "openai"]
EXPORT_FORMATS: tuple[str, ...] = ("trl", "trl-chat", "openai")


class DatasetError(Exception):
    """A dataset version cannot be found or cut; the message says which and why."""


def slug(model: str) -> str:
    """A model name as a folder name (``org/model:tag`` -> ``org_model_tag``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"


def in_eval(pair_id: str, eval_fraction: float) -> bool:
    """Whether a pair is held out: a stable function of its id."""
    bucket = int(hashlib.sha256(f"split:{pair_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < eval_fraction


@dataclass(frozen=True)
class DatasetVersion:
    model: str
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def train_path(self) -> Path:
        return self.path / "train.jsonl"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.jsonl"

    def rows(self, split: Literal["train", "eval"]) -> list[dict[str, Any]]:
        path = self.train_path if split == "train" else self.eval_path
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


def _trl_row(pair: Pair) -> dict[str, Any]:
    return {
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "pair_id": pair.pair_id,
    }


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in rows
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cut(
    root: Path,
    model: str,
    pairs: Sequence[Pair],
    *,
    eval_fraction: float = 0.2,
    drops: dict[str, int] | None = None,
    filters: Sequence[str] = (
        "empty_chosen",
        "identical",
        "toxic_chosen",
        "pii_chosen",
        "duplicate",
    ),
    write: bool = True,
) -> DatasetVersion:
    """Write (or find) the version holding exactly ``pairs``; returns it.

    ``write=False`` computes the version and manifest without touching the disk (dry runs).
    """
    if not pairs:
        raise DatasetError(f"no preference pairs for model {model!r} yet: nothing to cut")
    ordered = sorted(pairs, key=lambda p: p.pair_id)
    train = [_trl_row(p) for p in ordered if not in_eval(p.pair_id, eval_fraction)]
    held = [_trl_row(p) for p in ordered if in_eval(p.pair_id, eval_fraction)]
    # With very few pairs the hash split can leave one side empty; move one over so
    # both training and the gate have something (deterministic: the first id).
    if not held and len(train) > 1:
        held.append(train.pop(0))
    train_bytes, eval_bytes = _jsonl(train), _jsonl(held)
    digest = hashlib.sha256(train_bytes + b"\x00" + eval_bytes).hexdigest()
    version = f"{slug(model)}-{digest[:12]}"
    path = root / slug(model) / version
    if (path / "manifest.json").exists():
        return load(root, version)
    manifest = {
        "version": version,
        "model": model,
        "sha256": digest,
        "created_at": datetime.now(UTC).isoformat(),
        "counts": {
            "pairs": len(ordered),
            "train": len(train),
            "eval": len(held),
            "by_source": dict(Counter(p.source for p in ordered)),
            "dropped": dict(drops or {}),
        },
        "eval_fraction": eval_fraction,
        "split": "sha256(pair_id) bucket: a held-out pair stays held out in later versions",
        "filters": list(filters),
        "source_event_ids": sorted({i for p in ordered for i in p.source_event_ids}),
        "format": "trl preference (prompt / chosen / rejected)",
    }
    if not write:
        return DatasetVersion(model, version, path, manifest)
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / "train.jsonl", train_bytes)
    _write_atomic(path / "eval.jsonl", eval_bytes)
    # The manifest goes last: a folder without one is an interrupted cut, redone next time.
    _write_atomic(path / "manifest.json", json.dumps(manifest, indent=2).encode())
    return DatasetVersion(model, version, path, manifest)


def versions(root: Path, model: str | None = None) -> list[DatasetVersion]:
    """Every complete version (newest first), optionally of one model."""
    found: list[DatasetVersion] = []
    folders = [root / slug(model)] if model else (sorted(root.iterdir()) if root.exists() else [])
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            manifest_file = path / "manifest.json"
            if manifest_file.exists():
                manifest = json.loads(manifest_file.read_text())
                found.append(DatasetVersion(manifest["model"], path.name, path, manifest))
    return sorted(found, key=lambda v: v.manifest["created_at"], reverse=True)


def load(root: Path, version: str) -> DatasetVersion:
    """The version named ``version`` (a unique prefix will do)."""
    matches = [v for v in versions(root) if v.version.startswith(version)]
    if not matches:
        raise DatasetError(f"no dataset version {version!r} under {root}")
    if len(matches) > 1:
        names = ", ".join(v.version for v in matches)
        raise DatasetError(f"dataset version {version!r} is ambiguous: {names}")
    return matches[0]


def _messages(prompt: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def export_rows(rows: Sequence[dict[str, Any]], fmt: ExportFormat) -> Iterator[dict[str, Any]]:
    """Rows in an export format.

    * ``trl``: ``{"prompt", "chosen", "rejected"}`` strings (chat prompts flattened);
    * ``trl-chat``: TRL's conversational form, message lists on every side;
    * ``openai``: OpenAI preference fine-tuning, ``input.messages`` with
      ``preferred_output`` / ``non_preferred_output``.
    """
    for row in rows:
        if fmt == "trl":
            yield {
                "prompt": _prompt_text(row["prompt"]),
                "chosen": row["chosen"],
                "rejected": row["rejected"],
            }
        elif fmt == "trl-chat":
            yield {
                "prompt": _messages(row["prompt"]),
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
            }
        elif fmt == "openai":
            yield {
                "input": {"messages": _messages(row["prompt"])},
                "preferred_output": [{"role": "assistant", "content": row["chosen"]}],
                "non_preferred_output": [{"role": "assistant", "content": row["rejected"]}],
            }
        else:
            raise DatasetError(f"unknown export format {fmt!r}; use one of {EXPORT_FORMATS}")
