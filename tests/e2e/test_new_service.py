"""A fifth service is a folder and one entry-point line: ARCHITECTURE.md's toy, run in `up`.

The toy's files are taken from ARCHITECTURE.md as they stand, so the page cannot
drift from what works. The entry point is registered the way pip registers one
(a ``.dist-info`` with ``entry_points.txt`` on the path); nothing else changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from llmloop.testing.up import LLMLOOP, Up

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def toy_service(site: Path) -> None:
    """Write the tally service and its entry point from ARCHITECTURE.md under ``site``."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    code = re.search(r"```python\n# services/tally/(llmloop_tally/spec\.py)\n(.*?)```", text, re.S)
    line = re.search(
        r"```toml\n# pyproject\.toml, \[project\.entry-points\.\"(.+?)\"\]\n(.+?)\n```", text
    )
    assert code and line, "ARCHITECTURE.md lost the toy service's spec or its entry point"
    package = site / "llmloop_tally"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (site / code.group(1)).write_text(code.group(2))
    dist = site / "llmloop_tally-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: llmloop-tally\nVersion: 0.1\n")
    ((name, value),) = tomllib.loads(line.group(2)).items()
    (dist / "entry_points.txt").write_text(f"[{line.group(1)}]\n{name} = {value}\n")


def test_a_registered_service_gets_its_command_and_runs_in_up(tmp_path):
    site = tmp_path / "site"
    toy_service(site)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }

    help_text = subprocess.run(
        [LLMLOOP, "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "tally" in help_text and "completions per model, counted by the tally" in help_text

    up = Up(tmp_path / "data", env=env)
    try:
        events = [
            {
                "type": "completion",
                "event_id": str(uuid.uuid4()),
                "model": model,
                "prompt": "q",
                "completion": "a",
            }
            for model in ["model-a"] * 3 + ["model-b"] * 2
        ]
        assert up.post(events).status_code == 202
        tally = tmp_path / "data" / "tally.json"
        deadline = time.monotonic() + 30
        while not (
            tally.exists() and json.loads(tally.read_text()) == {"model-a": 3, "model-b": 2}
        ):
            assert time.monotonic() < deadline, tally.read_text() if tally.exists() else "no tally"
            time.sleep(0.2)
        assert re.search(r"services: .*\btally\b", up.log.read_text())
    finally:
        assert up.stop() == 0
