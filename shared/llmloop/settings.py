"""Settings from the environment (prefix ``LLMLOOP_``), read once at start.

Nothing reads the environment at import time: the CLI builds one ``Settings``
and passes it down, so tests and embedded runs can build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where llmloop keeps its data and how its runtimes connect."""

    model_config = SettingsConfigDict(env_prefix="LLMLOOP_", frozen=True, extra="ignore")

    data_dir: Path = Field(
        default=Path(".llmloop"),
        description="Embedded runtime: the durable local log and the chDB store live here.",
    )
    bus_url: str = Field(
        default="",
        description="sqlite:///PATH (durable local log), kafka://HOST:PORT[,HOST:PORT][?opts] "
        "or memory://. Default: sqlite under data_dir.",
    )
    store_url: str = Field(
        default="",
        description="chdb:///PATH (embedded ClickHouse) or clickhouse://HOST:PORT[/DB]. "
        "Default: chdb under data_dir.",
    )
    clickhouse_cluster: str = Field(
        default="",
        description="A ClickHouse cluster name (remote_servers): migrations run ON CLUSTER with "
        "replicated engines and Distributed tables. Empty: single node, and ClickHouse Cloud.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    port: int = Field(default=7070, ge=0, le=65535, description="Port of the HTTP API.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long ingest waits for the bus to acknowledge."
    )
    max_batch_events: int = Field(default=1_000, gt=0, description="Most events in one request.")
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, gt=0, description="Largest request body (after gunzip)."
    )
    writer_batch_size: int = Field(
        default=5_000, gt=0, description="The store writer flushes at this many rows..."
    )
    writer_max_wait_s: float = Field(default=0.25, gt=0, description="...or after this long.")

    @model_validator(mode="before")
    @classmethod
    def _default_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data_dir = Path(data.get("data_dir") or ".llmloop")
        if not data.get("bus_url"):
            data["bus_url"] = f"sqlite:///{(data_dir / 'bus.db').as_posix()}"
        if not data.get("store_url"):
            data["store_url"] = f"chdb:///{(data_dir / 'chdb').as_posix()}"
        return data
