"""Settings: from the environment at start, frozen, with embedded defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmloop.settings import Settings


def test_defaults_put_the_log_and_the_store_in_the_data_dir(monkeypatch):
    monkeypatch.delenv("LLMLOOP_DATA_DIR", raising=False)
    settings = Settings()
    assert settings.data_dir == Path(".llmloop")
    assert settings.bus_url == "sqlite:///.llmloop/bus.db"
    assert settings.store_url == "chdb:///.llmloop/chdb"


def test_environment_is_read_when_settings_are_built(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLMLOOP_BUS_URL", "kafka://broker:9092")
    monkeypatch.setenv("LLMLOOP_PORT", "8123")
    settings = Settings()
    assert settings.bus_url == "kafka://broker:9092"
    assert settings.store_url == f"chdb:///{tmp_path}/chdb"
    assert settings.port == 8123
    assert Settings(port=9000).port == 9000  # explicit values win over the environment


def test_settings_are_frozen_and_validated(monkeypatch):
    with pytest.raises(ValidationError):
        Settings().port = 1  # type: ignore[misc]
    monkeypatch.setenv("LLMLOOP_PORT", "seventy")
    with pytest.raises(ValidationError, match="port"):
        Settings()
