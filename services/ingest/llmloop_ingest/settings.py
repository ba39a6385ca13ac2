"""Ingest's own settings: keys, redaction, back-pressure. Env prefix ``LLMLOOP_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from pydantic import Field

from llmloop.service import derive_settings
from llmloop.settings import Settings


class IngestSettings(Settings):
    """What the ingest API needs beyond the shared settings.

    Read once at start (never at import); ``create_app`` accepts plain
    ``Settings`` too and fills these from the environment.
    """

    auth: Literal["keys", "none"] = Field(
        default="keys",
        description="keys: every request needs a project's API key (the default). "
        "none: every request belongs to project 'default' (a closed laptop only).",
    )
    keys_db: Path | None = Field(
        default=None,
        description="SQLite file of hashed keys that `llmloop keys` manages. "
        "Default: keys.db under data_dir.",
    )
    keys_file: Path | None = Field(
        default=None,
        description="A read-only file of 'PROJECT SHA256' lines (`llmloop keys export`), "
        "e.g. a Kubernetes Secret mounted into every ingest replica; re-read when it changes. "
        "When set, it replaces keys_db.",
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a key lookup is cached: a revoked key stops working within this.",
    )
    redact_pii: str = Field(
        default="",
        description="Projects whose events have emails, phone numbers, card numbers and IP "
        "addresses replaced before they leave ingest: comma-separated ids, or * for all.",
    )
    # The OTel SDKs export 512 spans at a time by default; with long prompts one
    # export is tens of MB (512 x 2 x 40 KB of text is 40 MB), and a 413 loses the
    # whole batch: the exporter does not split and retry.
    otlp_max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest OTLP export body (after gzip inflation) on /v1/otlp/*.",
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of a 503 when the bus did not acknowledge."
    )

    def keys_path(self) -> Path:
        """Where the SQLite key store lives."""
        return self.keys_db or self.data_dir / "keys.db"

    def redacts(self, project: str) -> bool:
        """Whether events of ``project`` are redacted."""
        wanted = {p.strip() for p in self.redact_pii.split(",") if p.strip()}
        return "*" in wanted or project in wanted


def ingest_settings(settings: Settings | None) -> IngestSettings:
    """``settings`` as ``IngestSettings``: explicit values win, ingest's own come from env."""
    if settings is None:
        return IngestSettings()
    return cast(IngestSettings, derive_settings(IngestSettings, settings))
