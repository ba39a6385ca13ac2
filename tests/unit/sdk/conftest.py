"""Fixtures for the SDK's tests: the real ingest app, served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_helpers import Collector


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path / "server")
    c.served.start()
    yield c
    c.close()
