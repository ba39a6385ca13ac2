"""From a request's query string to ``Filters`` the viewer is allowed: the project scope check."""

from __future__ import annotations

import time

from fastapi import HTTPException, Request

from llmloop.store import Store
from llmloop_console.panels import Filters
from llmloop_console.security import Viewer

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_RANGE = "6h"


class Projects:
    """The projects that have data, for a ``*`` scope (cached: it changes rarely)."""

    def __init__(self, store: Store, ttl_s: float = 10.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cached: tuple[float, list[str]] | None = None

    def known(self) -> list[str]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl_s:
            rows = self.store.query("SELECT DISTINCT project_id FROM completions ORDER BY 1").rows
            self._cached = (now, [str(r[0]) for r in rows])
        return self._cached[1]

    def visible(self, viewer: Viewer) -> list[str]:
        if viewer.scope.everything:
            return self.known()
        return sorted(viewer.scope.projects)


def allowed_projects(request: Request, viewer: Viewer, projects: Projects) -> tuple[str, ...]:
    """The projects this request may read: what it asked for, each checked, or all it may see."""
    asked = [p for p in request.query_params.getlist("project") if p]
    for project in asked:
        if not viewer.scope.allows(project):
            raise HTTPException(403, f"this console token does not cover project {project!r}")
    visible = projects.visible(viewer)
    chosen = tuple(asked) if asked else tuple(visible)
    # A '*' token on an empty store still filters by something: nothing matches ''.
    return chosen or ("",)


def filters_from(request: Request, viewer: Viewer, projects: Projects) -> Filters:
    q = request.query_params
    now = int(time.time()) + 1  # rows of the current second are in the range too
    try:
        end = int(q["to"]) if q.get("to") else now
        start = int(q["from"]) if q.get("from") else end - RANGES[q.get("range") or DEFAULT_RANGE]
    except (KeyError, ValueError) as exc:
        raise HTTPException(400, f"bad time range: {exc}") from exc
    if start >= end:
        raise HTTPException(400, "the time range is empty: from must be before to")
    return Filters(
        start=start,
        end=end,
        projects=allowed_projects(request, viewer, projects),
        model=tuple(v for v in q.getlist("model") if v),
        prompt_version=tuple(v for v in q.getlist("prompt_version") if v),
        model_version=tuple(v for v in q.getlist("model_version") if v),
    )
