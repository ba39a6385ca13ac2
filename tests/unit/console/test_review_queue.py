"""The review queue on a real chDB store: pairs found, one reviewer per item, judgments sent."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_console.app import create_app
from llmloop_console.tokens import ConsoleTokens

pytestmark = pytest.mark.slow


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[dict]]] = []

    async def submit(self, project: str, events: list[dict]) -> dict:
        self.sent.append((project, events))
        return {"accepted": len(events), "event_ids": [e["event_id"] for e in events]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = open_store(f"chdb:///{tmp_path_factory.mktemp('review')}/chdb")
    migrate(s)
    for project, prompt in [("shop", "p1"), ("shop", "p2"), ("other", "p3")]:
        for answer in ("a", "b"):
            s.command(
                "INSERT INTO completions (event_id, project_id, ts, model, prompt, completion) "
                "VALUES ({id:UUID}, {p:String}, now64(3), 'm', {q:String}, {c:String})",
                {"id": str(uuid.uuid4()), "p": project, "q": f"  {prompt.upper()} ", "c": answer},
            )
    yield s
    s.close()


def reviewer(app, tokens, projects):
    token, _ = tokens.create(projects)
    client = TestClient(app, base_url="http://console.test")
    client.get(f"/console/signin?token={token}")
    page = client.get("/console/review")
    client.headers["X-CSRF-Token"] = page.text.split('csrf-token" content="')[1].split('"')[0]
    return client


def test_two_reviewers_never_get_the_same_pair_and_a_judgment_is_sent(store, tmp_path):
    tokens = ConsoleTokens(tmp_path / "console.db")
    sink = RecordingSink()
    app = create_app(store, tokens, sink=sink)
    alice, bob, carol = (reviewer(app, tokens, ["shop"]) for _ in range(3))
    outsider = reviewer(app, tokens, ["nobody"])
    a = alice.get("/console/api/review/next?kind=pair").json()["item"]
    b = bob.get("/console/api/review/next?kind=pair").json()["item"]
    assert a and b and a["key"] != b["key"]
    assert {a["project"], b["project"]} == {"shop"}
    assert carol.get("/console/api/review/next?kind=pair").json()["item"] is None
    assert outsider.get("/console/api/review/next?kind=pair").json()["item"] is None
    # Bob cannot judge Alice's item; Alice can.
    chosen = a["answers"][0]["id"]
    body = {"key": a["key"], "verdict": "preference", "chosen_id": chosen}
    assert bob.post("/console/api/review/judge", json=body).status_code == 409
    sent = alice.post("/console/api/review/judge", json=body)
    assert sent.status_code == 200 and sent.json()["sent"] == ["preference"]
    ((project, (event,)),) = sink.sent
    assert project == "shop" and event["chosen_id"] == chosen and event["source"] == "annotator"
    # Bob skips: Carol gets his item; Bob does not get it back.
    assert bob.post("/console/api/review/skip", json={"key": b["key"]}).status_code == 200
    assert carol.get("/console/api/review/next?kind=pair").json()["item"]["key"] == b["key"]
    assert bob.get("/console/api/review/next?kind=pair").json()["item"] != b


def test_single_answers_can_be_scored(store, tmp_path):
    tokens = ConsoleTokens(tmp_path / "console.db")
    sink = RecordingSink()
    client = reviewer(create_app(store, tokens, sink=sink), tokens, ["other"])
    item = client.get("/console/api/review/next?kind=single").json()["item"]
    assert item["kind"] == "single" and item["project"] == "other"
    body = {"key": item["key"], "verdict": "score", "value": 2}
    assert client.post("/console/api/review/judge", json=body).status_code == 200
    assert sink.sent[0][1][0]["kind"] == "score"


def test_the_low_confidence_queue_holds_what_a_judge_scored_low(store, tmp_path):
    low = store.query(
        "SELECT toString(event_id) FROM completions WHERE project_id = 'other' LIMIT 1"
    ).scalar()
    store.command(
        "INSERT INTO feedback (event_id, project_id, ts, completion_id, kind, source, value, "
        "scale_min, scale_max) VALUES (generateUUIDv4(), 'other', now64(3), {c:UUID}, 'score', "
        "'judge', 0.2, 0, 1)",
        {"c": low},
    )
    tokens = ConsoleTokens(tmp_path / "console.db")
    client = reviewer(create_app(store, tokens, sink=RecordingSink()), tokens, ["other"])
    item = client.get("/console/api/review/next?kind=single&flag=low_confidence").json()["item"]
    assert item["answers"][0]["id"] == low
    bad = client.get("/console/api/review/next?kind=single&flag=nonsense")
    assert bad.status_code == 400
