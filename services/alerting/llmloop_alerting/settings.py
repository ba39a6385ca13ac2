"""The alerting service's settings (``LLMLOOP_ALERTING_*``), on top of the shared ones."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr

from llmloop.settings import Settings

log = logging.getLogger(__name__)


class AlertingSettings(Settings):
    """Rules, state, signing and delivery limits. Defaults work on a laptop."""

    alerting_rules: Path | None = Field(
        default=None,
        description="Rules YAML; reloaded when it changes. Default: the shipped rule set.",
    )
    alerting_state: Path | None = Field(
        default=None,
        description="SQLite file with alert states and the notification outbox. "
        "Default: alerting.db in data_dir.",
    )
    alerting_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret that signs webhooks; comma-separated to sign with several "
        "during a rotation. Default: a random one kept in data_dir/alerting.secret.",
    )
    alerting_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Most webhook requests in flight at once."
    )
    alerting_tick_s: float = Field(
        default=1.0, gt=0, le=60, description="How often 'for', renotify and no-data are checked."
    )
    alerting_batch_wait_s: float = Field(
        default=0.05, gt=0, description="Longest wait to fill a batch of metric events."
    )
    alerting_backoff_base_s: float = Field(
        default=0.5, gt=0, description="First retry waits about this long; then it doubles..."
    )
    alerting_backoff_max_s: float = Field(default=60.0, gt=0, description="...up to this.")
    alerting_replicated: bool = Field(
        default=False,
        description="Two or more replicas share the work: metrics partitions split by the "
        "consumer group, state logged on Kafka (llmloop.alerting.changelog.v1) instead of "
        "the SQLite file. Needs a kafka:// bus.",
    )
    alerting_external_url: str = Field(
        default="", description="A link to your llmloop / Grafana, put in every notification."
    )

    @property
    def state_path(self) -> Path:
        return self.alerting_state or self.data_dir / "alerting.db"

    def signing_secrets(self) -> list[str]:
        """The configured secrets, or the data dir's own (created on first use, mode 0600)."""
        if self.alerting_secret is not None:
            found = [s.strip() for s in self.alerting_secret.get_secret_value().split(",")]
            if any(found):
                return [s for s in found if s]
        if self.alerting_replicated:
            # Each replica would make its own, and receivers' checks would fail after
            # every failover: replicas must share one.
            raise ValueError(
                "replicated alerting (LLMLOOP_ALERTING_REPLICATED) needs "
                "LLMLOOP_ALERTING_SECRET: every replica must sign with the same secret"
            )
        path = self.data_dir / "alerting.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                return [path.read_text().strip()]
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            log.info(
                "created the webhook signing secret in %s (set LLMLOOP_ALERTING_SECRET "
                "to choose your own)",
                path,
            )
        return [path.read_text().strip()]
