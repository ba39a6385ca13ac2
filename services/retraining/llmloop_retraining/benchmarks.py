"""Benchmark task sets: fixed prompts with reference answers, scored at every gate run.

Preference pairs come from the same feedback a model is trained on; a benchmark
is a fixed task that does not move, so a regression on it is caught even when
the held-out pairs look fine. A user registers one with
``llmloop datasets add-benchmark NAME FILE.jsonl`` (one ``{"prompt": ...,
"reference": ...}`` a line; ``"references": [...]`` for several; a chat prompt
may be a list of messages).

Stored like the preference datasets, content-addressed:
``DATA_DIR/datasets/_benchmarks/<name>/<version>/`` with ``tasks.jsonl``
(normalised: ``prompt`` and ``references``) and ``manifest.json``; the version id
is the hash of the tasks, so registering the same file twice is one version,
and a changed file is a new one. The folder lies inside the datasets volume, so
a Kubernetes job reads it where it reads its dataset. (``_benchmarks`` cannot be
a model's folder: ``datasets.slug`` never starts with an underscore.)

Every gate run scores the newest version of each benchmark registered for the
model (or for every model); the model version records the scores as
``bench.<name>.rouge_l``, ``bench.<name>.bleu`` and their base / delta / bounds.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmloop_retraining.datasets import DatasetError, _jsonl, _write_atomic

FOLDER = "_benchmarks"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: str
    path: Path
    manifest: dict[str, Any]

    def job_entry(self) -> dict[str, str]:
        """What the DPO job needs to answer it (``JobSpec.benchmarks``)."""
        return {"name": self.name, "version": self.version, "path": str(self.path)}


def _task(line_no: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict) or "prompt" not in row:
        raise DatasetError(f"line {line_no}: each line needs a 'prompt' and a 'reference'")
    refs = row.get("references", row.get("reference"))
    refs = [refs] if isinstance(refs, str) else refs
    if not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise DatasetError(f"line {line_no}: 'reference' must be a non-empty string (or a list)")
    prompt = row["prompt"]
    if not (isinstance(prompt, str) and prompt.strip()) and not isinstance(prompt, list):
        raise DatasetError(f"line {line_no}: 'prompt' must be text or a list of chat messages")
    return {"prompt": prompt, "references": list(refs)}


def add(root: Path, name: str, source: Path, *, model: str | None = None) -> Benchmark:
    """Register ``source`` (JSONL) as a version of benchmark ``name``; returns it."""
    if not _NAME.match(name):
        raise DatasetError(f"benchmark name {name!r}: use letters, digits, '.', '_' or '-'")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {source}: {exc.strerror}") from exc
    tasks = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                tasks.append(_task(i, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{source} line {i}: not JSON ({exc.msg})") from exc
    if not tasks:
        raise DatasetError(f"{source} holds no tasks")
    data = _jsonl(tasks)
    digest = hashlib.sha256(data).hexdigest()
    version = f"{name}-{digest[:12]}"
    path = root / FOLDER / name / version
    if (path / "manifest.json").exists():
        return load(root, name, version)
    manifest = {
        "name": name,
        "version": version,
        "model": model,
        "sha256": digest,
        "tasks": len(tasks),
        "source": str(source),
        "created_at": datetime.now(UTC).isoformat(),
        "format": "prompt / references",
    }
    path.mkdir(parents=True, exist_ok=True)
    _write_atomic(path / "tasks.jsonl", data)
    _write_atomic(path / "manifest.json", json.dumps(manifest, indent=2).encode())
    return Benchmark(name, version, path, manifest)


def versions(root: Path, name: str | None = None) -> list[Benchmark]:
    """Every registered version, newest first, optionally of one benchmark."""
    base = root / FOLDER
    if not base.exists():
        return []
    found = []
    for folder in [base / name] if name else sorted(base.iterdir()):
        for path in folder.iterdir() if folder.is_dir() else []:
            manifest_file = path / "manifest.json"
            if manifest_file.exists():
                manifest = json.loads(manifest_file.read_text())
                found.append(Benchmark(manifest["name"], path.name, path, manifest))
    return sorted(found, key=lambda b: b.manifest["created_at"], reverse=True)


def load(root: Path, name: str, version: str) -> Benchmark:
    for b in versions(root, name):
        if b.version == version:
            return b
    raise DatasetError(f"no version {version!r} of benchmark {name!r}")


def for_model(root: Path, model: str) -> list[Benchmark]:
    """The newest version of each benchmark that applies to ``model``, by name."""
    newest: dict[str, Benchmark] = {}
    for b in versions(root):
        if b.manifest.get("model") in (None, model) and b.name not in newest:
            newest[b.name] = b
    return [newest[n] for n in sorted(newest)]
