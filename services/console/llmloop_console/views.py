"""Conversations, alerts, retraining and the review queue: their pages and JSON routes.

Reads check the scope through ``filters_from`` / ``allowed_projects``; every
POST passes the CSRF checks (``ChangingViewerDep``) and names the project it
acts on, which the token must cover.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from llmloop_console import pages, reads, review
from llmloop_console.ports import SinkError
from llmloop_console.scope import allowed_projects, filters_from
from llmloop_console.security import ChangingViewerDep, Viewer, ViewerDep

router = APIRouter(include_in_schema=False)


def _state(request: Request) -> Any:
    return request.app.state


_html = pages.html_response


def _projects(request: Request, viewer: Viewer) -> list[str]:
    return list(allowed_projects(request, viewer, _state(request).console_projects))


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def _project_of(request: Request, viewer: Viewer, body: dict[str, Any]) -> str:
    project = str(body.get("project", ""))
    if not project or not viewer.scope.allows(project):
        raise HTTPException(403, f"this console token does not cover project {project!r}")
    return project


# --- pages -------------------------------------------------------------------------------


@router.get("/console/conversations")
async def conversations_page(viewer: ViewerDep) -> Response:
    return _html(
        pages.view_page("Conversations", "conversations", viewer.csrf, "/console/conversations")
    )


@router.get("/console/conversations/{completion_id}")
async def conversation_page(completion_id: str, viewer: ViewerDep) -> Response:
    return _html(
        pages.view_page(
            "Conversation",
            "conversation",
            viewer.csrf,
            "/console/conversations",
            {"id": completion_id},
        )
    )


@router.get("/console/alerts")
async def alerts_page(viewer: ViewerDep) -> Response:
    return _html(pages.view_page("Alerts", "alerts", viewer.csrf, "/console/alerts"))


@router.get("/console/alerts/{fingerprint}")
async def alert_page(fingerprint: str, viewer: ViewerDep) -> Response:
    return _html(
        pages.view_page("Alert", "alert", viewer.csrf, "/console/alerts", {"fp": fingerprint})
    )


@router.get("/console/retraining")
async def retraining_page(viewer: ViewerDep) -> Response:
    return _html(pages.view_page("Retraining", "retraining", viewer.csrf, "/console/retraining"))


@router.get("/console/review")
async def review_page(viewer: ViewerDep) -> Response:
    return _html(pages.view_page("Review queue", "review", viewer.csrf, "/console/review"))


# --- reads -------------------------------------------------------------------------------


@router.get("/console/api/conversations")
async def conversations(request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    filters = filters_from(request, viewer, state.console_projects)
    q = request.query_params
    try:
        page = await asyncio.to_thread(
            reads.conversations,
            state.console_store,
            filters,
            search=q.get("q", "")[:200],
            flag=q.get("flag", ""),
            before=q.get("before", "")[:80],
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse(page)


@router.get("/console/api/conversations/{completion_id}")
async def conversation(completion_id: str, request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    found = await asyncio.to_thread(
        reads.conversation, state.console_store, _projects(request, viewer), completion_id
    )
    if found is None:  # another project's id looks exactly like an unknown one
        raise HTTPException(404, f"no completion {completion_id!r} in your projects")
    return JSONResponse(found)


@router.get("/console/api/alerts")
async def alerts(request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    filters = filters_from(request, viewer, state.console_projects)
    listed = await asyncio.to_thread(reads.alerts, state.console_store, filters)
    dead = await asyncio.to_thread(reads.dead_letters, state.console_store, list(filters.projects))
    return JSONResponse({"alerts": listed, "dead_letters": dead})


@router.get("/console/api/alerts/{fingerprint}")
async def alert(fingerprint: str, request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    found = await asyncio.to_thread(
        reads.alert,
        state.console_store,
        _projects(request, viewer),
        fingerprint,
        state.console_rule_metrics,
    )
    if found is None:
        raise HTTPException(404, f"no alert {fingerprint!r} in your projects")
    found["threshold_line"] = state.console_thresholds.get(found["alert"]["rule"])
    return JSONResponse(found)


@router.get("/console/api/retraining")
async def retraining(request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    filters = filters_from(request, viewer, state.console_projects)
    projects = list(filters.projects)
    store, ops = state.console_store, state.console_ops
    out: dict[str, Any] = {
        "jobs": await asyncio.to_thread(reads.jobs, store, filters),
        "versions": await asyncio.to_thread(reads.model_versions, store, projects),
        "pairs": [],
        "pair_counts": [],
        "datasets": [],
        "operations": ops is not None,
    }
    if ops is not None:
        out["pairs"] = await asyncio.to_thread(ops.preference_pairs, projects, 20)
        out["pair_counts"] = await asyncio.to_thread(ops.pair_counts, projects)
        # A dataset version is cut per model from every project's pairs.
        if viewer.scope.everything:
            out["datasets"] = await asyncio.to_thread(ops.datasets)
    return JSONResponse(out)


# --- actions -----------------------------------------------------------------------------


@router.post("/console/api/alerts/replay")
async def replay(request: Request, viewer: ChangingViewerDep) -> Response:
    body = await _body(request)
    project = _project_of(request, viewer, body)
    ids = [str(i) for i in body.get("notification_ids", [])][:500]
    ops = _state(request).console_ops
    if ops is None:
        raise HTTPException(501, "replay needs the alerting state: use `llmloop alerts dlq replay`")
    queued = await asyncio.to_thread(ops.replay_dead_letters, project, ids)
    return JSONResponse({"queued": queued})


@router.post("/console/api/models/{version}/promote")
async def promote(version: str, request: Request, viewer: ChangingViewerDep) -> Response:
    body = await _body(request)
    project = _project_of(request, viewer, body)
    state = _state(request)
    if state.console_ops is None:
        raise HTTPException(501, "promotion needs the bus: use `llmloop models promote`")
    row = await asyncio.to_thread(reads.model_version, state.console_store, [project], version)
    if row is None:
        raise HTTPException(404, f"no model version {version!r} in project {project!r}")
    if not row["gate_passed"] and body.get("override_failed_gate") is not True:
        reasons = "; ".join(r for r in row["gate_reasons"] if r.startswith("failed"))
        return JSONResponse(
            {
                "error": f"model version {version} failed its evaluation gate "
                f"({reasons or 'no gate'}); confirm the override to promote it anyway",
                "gate_failed": True,
            },
            409,
        )
    await state.console_ops.promote(row, forced=not row["gate_passed"])
    return JSONResponse({"promoted": version, "forced": not row["gate_passed"]})


@router.get("/console/api/review/next")
async def review_next(request: Request, viewer: ViewerDep) -> Response:
    state = _state(request)
    filters = filters_from(request, viewer, state.console_projects)
    kind = request.query_params.get("kind", "pair")
    if kind not in ("pair", "single"):
        raise HTTPException(400, "kind is pair or single")
    try:
        found = await asyncio.to_thread(
            review.candidates,
            state.console_store,
            filters,
            kind,
            request.query_params.get("flag", ""),
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    leases: review.Leases = state.console_leases
    item = leases.take(viewer.scope.token_id, [i for i in found if i.kind == kind])
    if item is None:
        return JSONResponse({"item": None})
    return JSONResponse({"item": item.__dict__})


@router.post("/console/api/review/judge")
async def review_judge(request: Request, viewer: ChangingViewerDep) -> Response:
    body = await _body(request)
    state = _state(request)
    leases: review.Leases = state.console_leases
    item = leases.holding(viewer.scope.token_id, str(body.get("key", "")))
    if item is None:
        raise HTTPException(409, "this item is not yours to judge (lease expired?): load the next")
    if not viewer.scope.allows(item.project):
        raise HTTPException(403, "this console token does not cover the item's project")
    try:
        events = review.judgment_events(item, body, viewer.scope.token_id)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    if state.console_sink is None:
        raise HTTPException(501, "this console has no ingest path to send judgments through")
    try:
        answer = await state.console_sink.submit(item.project, events)
    except SinkError as exc:
        raise HTTPException(503, str(exc)) from exc
    leases.release(viewer.scope.token_id, item.key, judged=True)
    return JSONResponse({"sent": [e["kind"] for e in events], **answer})


@router.post("/console/api/review/skip")
async def review_skip(request: Request, viewer: ChangingViewerDep) -> Response:
    body = await _body(request)
    leases: review.Leases = _state(request).console_leases
    leases.release(viewer.scope.token_id, str(body.get("key", "")), skip=True)
    return JSONResponse({"skipped": True})
