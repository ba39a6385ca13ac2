"""The console's list and detail queries on the store port, always inside the viewer's projects.

Every function takes the projects a request may read (already checked against
the token's scope) and binds them as a parameter; none returns a row of
another project. Lists page by a cursor (the last row's time) and a LIMIT, so a
page costs the same on a million completions as on a hundred.
"""

from __future__ import annotations

import uuid
from typing import Any

from llmloop.contracts.feedback import NEGATIVE_ROW
from llmloop.store import Store
from llmloop_console.panels import Filters, plain

PAGE = 50
FLAGS = {
    "toxic": "event_id IN (SELECT event_id FROM completion_enrichments WHERE "
    "project_id IN {project:Array(String)} AND toxic)",
    "refusal": "event_id IN (SELECT event_id FROM completion_enrichments WHERE "
    "project_id IN {project:Array(String)} AND refusal)",
    "pii": "event_id IN (SELECT event_id FROM completion_enrichments WHERE "
    "project_id IN {project:Array(String)} AND notEmpty(pii))",
    "negative": "event_id IN (SELECT completion_id FROM feedback WHERE "
    f"project_id IN {{project:Array(String)}} AND ({NEGATIVE_ROW}))",
    # An evaluator (source=judge, e.g. an LLM judge over OTel evaluations) scored it in
    # the lower half of its scale: the answers a person should look at first.
    "low_confidence": "event_id IN (SELECT completion_id FROM feedback WHERE "
    "project_id IN {project:Array(String)} AND source = 'judge' AND kind = 'score' AND "
    "(value - coalesce(scale_min, 0)) / (coalesce(scale_max, 1) - coalesce(scale_min, 0)) < 0.5)",
    "feedback": "event_id IN (SELECT completion_id FROM feedback WHERE "
    "project_id IN {project:Array(String)})",
}

C_WHERE = (
    "project_id IN {project:Array(String)} AND ts >= toDateTime({t_from:Int64}) "
    "AND ts <= toDateTime({t_to:Int64}) "
    "AND (empty({model:Array(String)}) OR model IN {model:Array(String)}) "
    "AND (empty({prompt_version:Array(String)}) OR prompt_version IN "
    "{prompt_version:Array(String)}) "
    "AND (empty({model_version:Array(String)}) OR model_version IN {model_version:Array(String)})"
)
STEP_COLUMNS = (
    "toString(event_id) AS id, project_id, ts, trace_id, parent_id, session_id, user_id, model, "
    "model_version, prompt_template, prompt_version, prompt_format, prompt, completion, "
    "prompt_tokens, completion_tokens, latency_ms, cost_usd, attributes, tags"
)


def rows(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in r.items()} for r in store.query(sql, params).dicts()]


def conversations(
    store: Store, filters: Filters, *, search: str = "", flag: str = "", before: str = ""
) -> dict[str, Any]:
    """One page of completions, newest first, with their flags and feedback summed up.

    ``before`` is the cursor the previous page returned (``MILLIS:ID`` of its last row):
    rows sharing a millisecond are ordered by id, so none is skipped or repeated.
    """
    where = [C_WHERE]
    params = filters.params()
    if search:
        where.append(
            "(positionCaseInsensitive(prompt, {q:String}) > 0 OR "
            "positionCaseInsensitive(completion, {q:String}) > 0 OR "
            "toString(event_id) = {q:String} OR trace_id = {q:String} OR session_id = {q:String})"
        )
        params["q"] = search
    if flag:
        if flag not in FLAGS:
            raise ValueError(f"unknown flag {flag!r}; one of {', '.join(FLAGS)}")
        where.append(FLAGS[flag])
    if before:
        millis, _, last_id = before.partition(":")
        try:
            params["before_ms"], params["before_id"] = int(millis), str(uuid.UUID(last_id))
        except ValueError:
            raise ValueError(f"bad page cursor {before!r}") from None
        where.append(
            "(toUnixTimestamp64Milli(ts) < {before_ms:Int64} OR (toUnixTimestamp64Milli(ts) = "
            "{before_ms:Int64} AND event_id < toUUID({before_id:String})))"
        )
    page = rows(
        store,
        "SELECT toString(event_id) AS id, ts, model, model_version, prompt_version, trace_id, "
        "session_id, substring(prompt, 1, 160) AS prompt, substring(completion, 1, 160) AS "
        f"completion, latency_ms FROM completions WHERE {' AND '.join(where)} "
        f"ORDER BY ts DESC, event_id DESC LIMIT {PAGE}",
        params,
    )
    ids = [r["id"] for r in page]
    if ids:
        scoped = {"project": params["project"], "ids": ids}
        flags = {
            r["id"]: r
            for r in rows(
                store,
                "SELECT toString(event_id) AS id, toxic, refusal, pii FROM completion_enrichments "
                "WHERE project_id IN {project:Array(String)} AND toString(event_id) IN "
                "{ids:Array(String)}",
                scoped,
            )
        }
        feedback = {
            r["id"]: r
            for r in rows(
                store,
                "SELECT toString(completion_id) AS id, "
                "countIf(kind = 'thumbs' AND value > 0) AS up, "
                "countIf(kind = 'thumbs' AND value < 0) AS down, count() AS feedback "
                "FROM feedback WHERE project_id IN {project:Array(String)} AND "
                "toString(completion_id) IN {ids:Array(String)} GROUP BY id",
                scoped,
            )
        }
        for r in page:
            f = flags.get(r["id"], {})
            r["flags"] = [k for k in ("toxic", "refusal") if f.get(k)] + list(f.get("pii") or [])
            r["feedback"] = {k: feedback.get(r["id"], {}).get(k, 0) for k in ("up", "down")}
    cursor = f"{round(page[-1]['ts'] * 1000)}:{page[-1]['id']}" if len(page) == PAGE else None
    return {"rows": page, "next_before": cursor}


def conversation(store: Store, projects: list[str], completion_id: str) -> dict[str, Any] | None:
    """A completion's chain (same trace) or session, step by step, with enrichment and feedback."""
    params: dict[str, Any] = {"project": projects, "id": completion_id}
    found = rows(
        store,
        f"SELECT {STEP_COLUMNS} FROM completions FINAL WHERE project_id IN "
        "{project:Array(String)} AND toString(event_id) = {id:String} LIMIT 1",
        params,
    )
    if not found:
        return None
    head = found[0]
    params["project"] = [head["project_id"]]
    if head["trace_id"]:
        by, params["key"] = "trace", head["trace_id"]
        same = "trace_id = {key:String}"
    elif head["session_id"]:
        by, params["key"] = "session", head["session_id"]
        same = "session_id = {key:String}"
    else:
        by, same = "single", "toString(event_id) = {id:String}"
    steps = rows(
        store,
        f"SELECT {STEP_COLUMNS} FROM completions FINAL WHERE project_id IN "
        f"{{project:Array(String)}} AND {same} ORDER BY ts LIMIT 200",
        params,
    )
    ids = [s["id"] for s in steps]
    scoped = {"project": params["project"], "ids": ids}
    enrich = {
        r["id"]: r
        for r in rows(
            store,
            "SELECT toString(event_id) AS id, prompt_tokens, completion_tokens, tokens_estimated, "
            "cost_usd, cost_source, prompt_sentiment, completion_sentiment, completion_toxicity, "
            "toxic, refusal, pii, demographics FROM completion_enrichments FINAL WHERE project_id "
            "IN {project:Array(String)} AND toString(event_id) IN {ids:Array(String)}",
            scoped,
        )
    }
    feedback: dict[str, list[dict[str, Any]]] = {}
    for f in rows(
        store,
        "SELECT toString(event_id) AS id, toString(completion_id) AS completion_id, ts, kind, "
        "source, value, scale_min, scale_max, comment, correction, toString(chosen_id) AS "
        "chosen_id, toString(rejected_id) AS rejected_id, user_id FROM feedback FINAL WHERE "
        "project_id IN {project:Array(String)} AND (toString(completion_id) IN {ids:Array(String)} "
        "OR toString(rejected_id) IN {ids:Array(String)}) ORDER BY ts",
        scoped,
    ):
        for target in {f["completion_id"], f["rejected_id"]} & set(ids):
            feedback.setdefault(target, []).append(f)
    for s in steps:
        s["enrichment"] = enrich.get(s["id"])
        s["feedback"] = feedback.get(s["id"], [])
    return {
        "by": by,
        "key": params.get("key", completion_id),
        "focus": completion_id,
        "steps": steps,
    }


def alerts(store: Store, filters: Filters) -> list[dict[str, Any]]:
    """Each alert (fingerprint) in the range, its latest state first."""
    return rows(
        store,
        "SELECT fingerprint, argMax(rule, ts) AS rule, argMax(status, ts) AS status, "
        "argMax(severity, ts) AS severity, argMax(labels, ts) AS latest_labels, "
        "argMax(annotations, ts) AS latest_annotations, argMax(value, ts) AS value, "
        "argMax(threshold, ts) AS threshold, "
        "min(starts_at) AS first_fired, max(ts) AS updated_at, count() AS changes FROM alerts "
        "WHERE project_id IN {project:Array(String)} AND ts >= toDateTime({t_from:Int64}) AND "
        "ts <= toDateTime({t_to:Int64}) AND (empty({model:Array(String)}) OR labels['model'] IN "
        "{model:Array(String)}) GROUP BY fingerprint ORDER BY status = 'firing' DESC, "
        "updated_at DESC LIMIT 200",
        filters.params(),
    )


def alert(
    store: Store, projects: list[str], fingerprint: str, rule_metrics: dict[str, str]
) -> dict[str, Any] | None:
    """An alert's state changes, its metric's history, deliveries and dead letters."""
    params: dict[str, Any] = {"project": projects, "fp": fingerprint}
    changes = rows(
        store,
        "SELECT ts, project_id, rule, status, severity, labels, annotations, value, threshold, "
        "starts_at, ends_at FROM alerts FINAL WHERE project_id IN {project:Array(String)} AND "
        "fingerprint = {fp:String} ORDER BY ts",
        params,
    )
    if not changes:
        return None
    last = changes[-1]
    params["project"] = [last["project_id"]]
    history: list[dict[str, Any]] = []
    metric = rule_metrics.get(last["rule"])
    if metric:
        labels = {k: v for k, v in (last["labels"] or {}).items() if k != "project"}
        match = "".join(
            f" AND labels[{{k{i}:String}}] = {{v{i}:String}}" for i in range(len(labels))
        )
        for i, (k, v) in enumerate(sorted(labels.items())):
            params[f"k{i}"], params[f"v{i}"] = k, v
        params["metric"] = metric
        start = min(c["ts"] for c in changes) - 6 * 3600
        params["t_from"] = int(start)
        history = rows(
            store,
            "SELECT window_end AS time, value, p_value, sample_size FROM metrics WHERE "
            "project_id IN {project:Array(String)} AND name = {metric:String} AND window_end >= "
            f"toDateTime({{t_from:Int64}}){match} ORDER BY window_end LIMIT 2000",
            params,
        )
    deliveries = rows(
        store,
        "SELECT ts, notification_id, status, receiver, receiver_type, attempt, outcome, "
        "http_status, error, duration_ms FROM notification_attempts FINAL WHERE project_id IN "
        "{project:Array(String)} AND fingerprint = {fp:String} ORDER BY ts LIMIT 500",
        params,
    )
    dead = dead_letters(store, params["project"], fingerprint)
    return {
        "alert": last,
        "changes": changes,
        "metric": metric,
        "history": history,
        "deliveries": deliveries,
        "dead_letters": dead,
    }


def dead_letters(store: Store, projects: list[str], fingerprint: str = "") -> list[dict[str, Any]]:
    return rows(
        store,
        "SELECT notification_id, project_id, rule, fingerprint, status, receiver, receiver_type, "
        "dead_lettered_at, error, http_status, failed_attempts FROM notification_dead_letters "
        "WHERE project_id IN {project:Array(String)} AND ({fp:String} = '' OR fingerprint = "
        "{fp:String}) ORDER BY dead_lettered_at DESC LIMIT 200",
        {"project": projects, "fp": fingerprint},
    )


def jobs(store: Store, filters: Filters) -> list[dict[str, Any]]:
    return rows(
        store,
        "SELECT job_id, project_id, model, argMax(stage, ts) AS stage, argMax(progress, ts) AS "
        "progress, argMax(message, ts) AS message, anyIf(dataset_version, dataset_version != '') "
        "AS dataset_version, anyIf(model_version, model_version != '') AS model_version, "
        "min(ts) AS requested_at, max(ts) AS updated_at FROM retrain_jobs WHERE project_id IN "
        "{project:Array(String)} AND ts >= toDateTime({t_from:Int64}) AND (empty({model:Array("
        "String)}) OR model IN {model:Array(String)}) GROUP BY job_id, project_id, model "
        "ORDER BY updated_at DESC LIMIT 200",
        filters.params(),
    )


VERSION_COLUMNS = (
    "project_id, model, version, job_id, base_model, launcher, artifact_uri, dataset_version, "
    "metrics, gate_passed, gate_reasons, status, registered_at, updated_at"
)


def model_versions(store: Store, projects: list[str]) -> list[dict[str, Any]]:
    return rows(
        store,
        f"SELECT {VERSION_COLUMNS} FROM model_versions FINAL WHERE project_id IN "
        "{project:Array(String)} ORDER BY registered_at DESC LIMIT 200",
        {"project": projects},
    )


def model_version(store: Store, projects: list[str], version: str) -> dict[str, Any] | None:
    """One version's row as ``models promote`` reads it (raw values: it becomes an event)."""
    result = store.query(
        f"SELECT {VERSION_COLUMNS} FROM model_versions FINAL WHERE project_id IN "
        "{project:Array(String)} AND version = {v:String} LIMIT 1",
        {"project": projects, "v": version},
    )
    found = result.dicts()
    if not found:
        return None
    row = found[0]
    row["metrics"] = dict(row["metrics"] or [])  # a Map arrives as (key, value) pairs
    return row
