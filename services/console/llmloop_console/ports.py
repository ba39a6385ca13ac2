"""What the console needs from the rest of llmloop, as small Protocols.

The console reads the store itself; everything else belongs to another
service and reaches the console through the composition root (``llmloop up``
wires in-process adapters; a stand-alone console gets HTTP ones or none):

* ``FeedbackSink``: judgments become feedback events on the ingest path, so
  they are validated, redacted and published exactly like the SDK's.
* ``Operations``: actions and state owned by alerting (replaying dead letters)
  and retraining (preference pairs, dataset versions, promotion).
"""

from __future__ import annotations

from typing import Any, Protocol


class SinkError(Exception):
    """The ingest path refused or could not take the events (the message says why)."""


class FeedbackSink(Protocol):
    async def submit(self, project: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Publish ``events`` (v1 wire dicts) for ``project``; the ingest answer, or SinkError."""
        ...


class Operations(Protocol):
    def replay_dead_letters(self, project: str, notification_ids: list[str]) -> int:
        """Queue the project's dead-lettered notifications again; how many were queued."""
        ...

    def preference_pairs(self, projects: list[str], limit: int) -> list[dict[str, Any]]:
        """The newest preference pairs of these projects, newest first."""
        ...

    def pair_counts(self, projects: list[str]) -> list[dict[str, Any]]:
        """Pairs per (project, model, source)."""
        ...

    def datasets(self) -> list[dict[str, Any]]:
        """Cut dataset versions (manifest: counts, filters applied), newest first.

        A version is cut per model from every project's pairs, so only a viewer
        whose token covers every project sees them.
        """
        ...

    async def promote(self, row: dict[str, Any], *, forced: bool) -> None:
        """Publish the promotion of a model version (its ``model_versions`` row)."""
        ...
