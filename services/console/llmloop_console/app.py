"""The console's routes: pages at ``/console/…``, JSON at ``/console/api/…``.

``install(app, …)`` adds them to an existing FastAPI app (``llmloop up`` puts
the console beside the ingest API on one port); ``create_app(…)`` makes a
stand-alone one (``llmloop console --store clickhouse://…``). Reads go
through the store port; the only writes are feedback events, handed to a
``FeedbackSink`` (the ingest path), like every other producer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from llmloop.contracts.panels import DASHBOARDS, VARIABLES, dashboard
from llmloop.store import Store, StoreError
from llmloop_console import pages, views
from llmloop_console.panels import bind, run_panel
from llmloop_console.ports import FeedbackSink, Operations
from llmloop_console.review import Leases
from llmloop_console.scope import Projects, allowed_projects, filters_from
from llmloop_console.security import COOKIE, Guard, NotSignedIn, ViewerDep
from llmloop_console.tokens import ConsoleTokens

STATIC = Path(__file__).parent / "static"


_html = pages.html_response


def install(
    app: FastAPI,
    store: Store,
    tokens: ConsoleTokens,
    *,
    thresholds: Mapping[str, float] | None = None,
    rule_metrics: Mapping[str, str] | None = None,
    sink: FeedbackSink | None = None,
    operations: Operations | None = None,
) -> None:
    """Add the console to ``app``: ``/`` redirects to it; every route checks the sign-in.

    ``thresholds`` and ``rule_metrics`` (rule name -> its threshold / metric) come
    from the alert rules; without ``sink`` the review queue cannot send
    judgments, without ``operations`` replay, pairs and promotion are off.
    """
    app.state.console_guard = Guard(tokens)
    app.state.console_store = store
    app.state.console_projects = Projects(store)
    app.state.console_thresholds = dict(thresholds or {})
    app.state.console_rule_metrics = dict(rule_metrics or {})
    app.state.console_sink = sink
    app.state.console_ops = operations
    app.state.console_leases = Leases()
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.include_router(views.router)

    async def not_signed_in(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/console/api/"):
            return JSONResponse({"error": "sign in first"}, 401)
        return RedirectResponse("/console/signin", 303)

    async def store_failed(request: Request, exc: Exception) -> Response:
        # A panel whose query fails says why, instead of a bare 500 (the page shows it).
        return JSONResponse({"error": f"the store refused the query: {exc}"}, 502)

    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_exception_handler(StoreError, store_failed)


router = APIRouter(include_in_schema=False)


def _state(request: Request) -> Any:
    return request.app.state


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console/", 303)


@router.get("/console/signin")
async def signin_get(request: Request, token: str = "") -> Response:
    """The sign-in link (``?token=…``, printed by ``llmloop up``) or the form."""
    if not token:
        return _html(pages.signin_page())
    return _sign_in(request, token)


@router.post("/console/signin")
async def signin_post(request: Request) -> Response:
    _state(request).console_guard.check_origin(request)
    form = await request.form()
    return _sign_in(request, str(form.get("token", "")))


def _sign_in(request: Request, token: str) -> Response:
    guard: Guard = _state(request).console_guard
    if guard.tokens.scope_for(token.strip()) is None:
        return _html(pages.signin_page("That token is unknown or revoked."), 401)
    response = RedirectResponse("/console/", 303)  # the token leaves the address bar
    response.set_cookie(
        COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 86400,
    )
    return response


@router.post("/console/signout")
async def signout(request: Request) -> Response:
    _state(request).console_guard.check_origin(request)
    response = RedirectResponse("/console/signin", 303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/console/")
async def home(viewer: ViewerDep) -> Response:
    return RedirectResponse(f"/console/d/{DASHBOARDS[0].uid}", 303)


@router.get("/console/d/{uid}")
async def dashboard_page(uid: str, viewer: ViewerDep) -> Response:
    try:
        d = dashboard(uid)
    except KeyError:
        raise HTTPException(404, f"no dashboard {uid!r}") from None
    return _html(pages.dashboard_page(d, viewer.csrf))


@router.get("/console/api/filters")
async def filter_options(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """The values each filter can take, within the viewer's projects and time range."""
    state = _state(request)
    projects: Projects = state.console_projects
    filters = filters_from(request, viewer, projects)
    out: dict[str, Any] = {"project": projects.visible(viewer)}
    chosen = allowed_projects(request, viewer, projects)

    def distinct() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, _, column in VARIABLES[1:]:
            rows = state.console_store.query(
                f"SELECT DISTINCT {column} FROM completions WHERE project_id IN "
                "{project:Array(String)} AND ts >= toDateTime({t_from:Int64}) "
                "AND ts <= toDateTime({t_to:Int64}) ORDER BY 1 LIMIT 500",
                {"project": list(chosen), "t_from": filters.start, "t_to": filters.end},
            ).rows
            found[name] = [str(r[0]) for r in rows]
        return found

    out.update(await asyncio.to_thread(distinct))
    return out


@router.get("/console/api/d/{uid}")
async def dashboard_spec(uid: str, viewer: ViewerDep) -> dict[str, Any]:
    """The dashboard as the catalogue has it (titles, kinds, units, bound SQL)."""
    try:
        d = dashboard(uid)
    except KeyError:
        raise HTTPException(404, f"no dashboard {uid!r}") from None
    return {
        "uid": d.uid,
        "title": d.title,
        "question": d.question,
        "panels": [
            {"title": p.title, "kind": p.kind, "unit": p.unit, "sql": bind(p.sql)} for p in d.panels
        ],
    }


@router.get("/console/api/d/{uid}/{index}")
async def panel_data(uid: str, index: int, request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    try:
        panel = dashboard(uid).panels[index]
    except (KeyError, IndexError):
        raise HTTPException(404, f"no panel {index} on {uid!r}") from None
    filters = filters_from(request, viewer, state.console_projects)
    threshold = state.console_thresholds.get(panel.threshold_rule)
    data = await asyncio.to_thread(run_panel, state.console_store, panel, filters, threshold)
    return JSONResponse(data)


def create_app(store: Store, tokens: ConsoleTokens, **options: Any) -> FastAPI:
    """A stand-alone console (no ingest API beside it); ``options`` as for ``install``."""
    app = FastAPI(title="llmloop console", docs_url=None, redoc_url=None, openapi_url=None)
    install(app, store, tokens, **options)
    return app
