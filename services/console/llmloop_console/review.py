"""The human review queue: items to judge, handed to one reviewer at a time, judgments as events.

Two kinds of item:

* ``pair``: two different answers of one model to the same prompt (equal after
  trimming and case), side by side; the reviewer picks the better one, which
  becomes a ``preference`` feedback event (chosen, rejected);
* ``single``: one answer to rate (a ``score`` on 1-5) or correct (a
  ``correction``, the text it should have been).

Items come from the store, inside the reviewer's projects and filters, and
skip completions an annotator already judged. A lease (in memory, a few
minutes) keeps an item away from other reviewers while one looks at it; a
skip releases it for others and hides it from this reviewer. Every event
carries ``source=annotator`` and the reviewer's token id in its metadata.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmloop.store import Store
from llmloop_console.panels import Filters
from llmloop_console.reads import C_WHERE, FLAGS, rows

LEASE_S = 300.0
CANDIDATES = 200  # items looked at per request: enough to skip leased ones


@dataclass
class Item:
    key: str
    kind: str  # pair | single
    project: str
    model: str
    prompt: str
    answers: list[dict[str, Any]]  # {"id", "completion", "model_version", "prompt_version"}


@dataclass
class Leases:
    """Which reviewer holds which item, until when; and what each reviewer skipped."""

    ttl_s: float = LEASE_S
    held: dict[str, tuple[str, float, Item]] = field(default_factory=dict)
    skipped: dict[str, set[str]] = field(default_factory=dict)
    # Judged here, maybe not yet in the store (the event is on its way through the
    # pipeline): never handed out again by this console.
    judged: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, reviewer: str, candidates: list[Item]) -> Item | None:
        now = time.monotonic()
        with self.lock:
            for key in [k for k, (_, until, _) in self.held.items() if until < now]:
                del self.held[key]
            mine = [i for k, (r, _, i) in self.held.items() if r == reviewer]
            if mine:  # a reload shows the same item, not a second one
                return mine[0]
            hidden = self.skipped.get(reviewer, set())
            for item in candidates:
                if item.key in self.held or item.key in hidden or item.key in self.judged:
                    continue
                self.held[item.key] = (reviewer, now + self.ttl_s, item)
                return item
        return None

    def holding(self, reviewer: str, key: str) -> Item | None:
        with self.lock:
            held = self.held.get(key)
            return held[2] if held and held[0] == reviewer else None

    def release(self, reviewer: str, key: str, *, skip: bool = False, judged: bool = False) -> None:
        with self.lock:
            held = self.held.get(key)
            if held and held[0] == reviewer:
                del self.held[key]
            if skip:
                self.skipped.setdefault(reviewer, set()).add(key)
            if judged:
                self.judged.add(key)


def _judged() -> str:
    return (
        "event_id NOT IN (SELECT completion_id FROM feedback WHERE project_id IN "
        "{project:Array(String)} AND source = 'annotator') AND event_id NOT IN (SELECT "
        "assumeNotNull(rejected_id) FROM feedback WHERE project_id IN {project:Array(String)} "
        "AND source = 'annotator' AND rejected_id IS NOT NULL)"
    )


def candidates(store: Store, filters: Filters, kind: str, flag: str = "") -> list[Item]:
    """Items to review, newest first, inside ``filters`` (the scope among them)."""
    params = filters.params()
    where = [C_WHERE, _judged()]
    if flag:
        if flag not in FLAGS:
            raise ValueError(f"unknown queue filter {flag!r}; one of {', '.join(FLAGS)}")
        where.append(FLAGS[flag])
    recent = (
        "SELECT toString(event_id) AS id, project_id, model, model_version, prompt_version, "
        "prompt, completion, ts, lower(trim(BOTH ' \\n' FROM prompt)) AS prompt_key "
        f"FROM completions WHERE {' AND '.join(where)} ORDER BY ts DESC LIMIT 20000"
    )
    if kind == "pair":
        found = rows(
            store,
            "SELECT project_id, model, any(prompt) AS prompt, groupArray(16)(tuple(id, completion, "
            "model_version, prompt_version)) AS answers, max(ts) AS latest FROM (" + recent + ") "
            "GROUP BY project_id, model, prompt_key HAVING uniqExact(completion) >= 2 "
            f"ORDER BY latest DESC LIMIT {CANDIDATES}",
            params,
        )
        items = []
        for r in found:
            answers, seen = [], set()
            for answer in r["answers"]:  # a Tuple arrives as {"1": ..., "2": ...}
                cid, text, mv, pv = (answer[k] for k in ("1", "2", "3", "4"))
                if text not in seen:
                    seen.add(text)
                    answers.append(
                        {"id": cid, "completion": text, "model_version": mv, "prompt_version": pv}
                    )
            if len(answers) < 2:
                continue
            a, b = answers[0], answers[1]
            key = "pair:" + ":".join(sorted([a["id"], b["id"]]))
            items.append(Item(key, "pair", r["project_id"], r["model"], r["prompt"], [a, b]))
        return items
    found = rows(store, recent.replace("LIMIT 20000", f"LIMIT {CANDIDATES}"), params)
    return [
        Item(
            "single:" + r["id"],
            "single",
            r["project_id"],
            r["model"],
            r["prompt"],
            [
                {
                    "id": r["id"],
                    "completion": r["completion"],
                    "model_version": r["model_version"],
                    "prompt_version": r["prompt_version"],
                }
            ],
        )
        for r in found
    ]


def judgment_events(item: Item, judgment: dict[str, Any], reviewer: str) -> list[dict[str, Any]]:
    """The feedback events (v1 wire form) that one judgment of ``item`` makes."""
    meta = {"console.reviewer": reviewer, "console.item": item.key}
    base = {"type": "feedback", "source": "annotator", "metadata": meta}
    ids = [a["id"] for a in item.answers]
    verdict = judgment.get("verdict")
    if item.kind == "pair" and verdict == "preference":
        chosen = str(judgment.get("chosen_id", ""))
        if chosen not in ids:
            raise ValueError("chosen_id must be one of the two answers")
        rejected = next(i for i in ids if i != chosen)
        return [
            {
                **base,
                "event_id": str(uuid.uuid4()),
                "kind": "preference",
                "completion_id": chosen,
                "chosen_id": chosen,
                "rejected_id": rejected,
            }
        ]
    target = str(judgment.get("completion_id", ids[0]))
    if target not in ids:
        raise ValueError("completion_id must be an answer of this item")
    if verdict == "score":
        value = judgment.get("value")
        if not isinstance(value, (int, float)) or not 1 <= value <= 5:
            raise ValueError("a score is a number from 1 to 5")
        return [
            {
                **base,
                "event_id": str(uuid.uuid4()),
                "kind": "score",
                "completion_id": target,
                "value": value,
                "scale_min": 1,
                "scale_max": 5,
            }
        ]
    if verdict == "correction":
        text = str(judgment.get("correction", "")).strip()
        if not text:
            raise ValueError("a correction needs the text the answer should have been")
        return [
            {
                **base,
                "event_id": str(uuid.uuid4()),
                "kind": "correction",
                "completion_id": target,
                "correction": text,
            }
        ]
    raise ValueError("verdict must be preference (pairs), score or correction")
