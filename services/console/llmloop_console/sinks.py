"""A ``FeedbackSink`` for a console on its own: ``POST /v1/events`` to ingest, as the SDK does.

``llmloop up`` hands the console its in-process ingest path instead
(``llmloop_app.console.IngestSink``). Ingest takes the project from the key,
so this sink needs one ingest key per project it may write for
(``LLMLOOP_CONSOLE_INGEST_KEYS=shop=llk_…,support=llk_…``).
"""

from __future__ import annotations

from typing import Any

import httpx

from llmloop_console.ports import SinkError


def parse_keys(text: str) -> dict[str, str]:
    """``project=key,project=key`` as a dict (a malformed entry is a ValueError)."""
    keys: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        project, sep, key = entry.partition("=")
        if not sep or not project or not key:
            raise ValueError(f"ingest key entry {entry!r}: expected PROJECT=KEY")
        keys[project] = key
    return keys


class HttpSink:
    def __init__(
        self,
        ingest_url: str,
        keys: dict[str, str],
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = ingest_url.rstrip("/") + "/v1/events"
        self.keys = keys
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def submit(self, project: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        key = self.keys.get(project)
        if key is None:
            raise SinkError(f"this console has no ingest key for project {project!r}")
        try:
            response = await self.client.post(
                self.url, json={"events": events}, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"ingest did not answer: {exc}") from exc
        if response.status_code != 202:
            raise SinkError(f"ingest answered {response.status_code}: {response.text[:300]}")
        return {"accepted": len(events), "event_ids": [e["event_id"] for e in events]}
