"""Sign-in and the project scope on every console route (a fake store records each query)."""

from __future__ import annotations

import re

import pytest
from console_fakes import RecordingStore
from fastapi.testclient import TestClient

from llmloop_console.app import create_app
from llmloop_console.tokens import ConsoleTokens


@pytest.fixture
def console(tmp_path):
    store = RecordingStore(["a", "b"])
    tokens = ConsoleTokens(tmp_path / "console.db")
    app = create_app(store, tokens)
    return TestClient(app, base_url="http://console.test"), tokens, store


def signed_in(client: TestClient, tokens: ConsoleTokens, projects: list[str]) -> TestClient:
    token, _ = tokens.create(projects)
    response = client.get(f"/console/signin?token={token}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    return client


def test_signed_out_pages_redirect_and_the_api_refuses(console):
    client, _, store = console
    page = client.get("/console/d/llmloop-overview", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/console/signin"
    assert client.get("/console/api/d/llmloop-overview/0").status_code == 401
    assert store.asked == []


def test_a_wrong_token_does_not_sign_in(console):
    client, _, _ = console
    response = client.get("/console/signin?token=llc_nope", follow_redirects=False)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_a_token_for_a_sees_only_a(console):
    client, tokens, store = console
    signed_in(client, tokens, ["a"])
    assert client.get("/console/api/filters").json()["project"] == ["a"]
    store.asked.clear()
    assert client.get("/console/api/d/llmloop-overview/0").status_code == 200
    assert [params["project"] for _, params in store.asked] == [["a"]]
    refused = client.get("/console/api/d/llmloop-overview/0?project=b")
    assert refused.status_code == 403
    assert client.get("/console/api/filters?project=b").status_code == 403


def test_an_all_projects_token_sees_what_the_store_has(console):
    client, tokens, store = console
    signed_in(client, tokens, ["*"])
    store.asked.clear()
    client.get("/console/api/d/llmloop-overview/0")
    assert store.asked[-1][1]["project"] == ["a", "b"]
    client.get("/console/api/d/llmloop-overview/0?project=b")
    assert store.asked[-1][1]["project"] == ["b"]


def test_a_revoked_token_is_signed_out_at_once(console):
    client, tokens, _ = console
    signed_in(client, tokens, ["a"])
    (info,) = tokens.list_tokens()
    tokens.revoke(info.token_id)
    assert client.get("/console/api/filters").status_code == 401


def test_pages_load_nothing_from_another_origin(console):
    client, tokens, _ = console
    signed_in(client, tokens, ["a"])
    page = client.get("/console/d/llmloop-drift")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text


def csrf_of(client: TestClient) -> str:
    page = client.get("/console/d/llmloop-overview")
    return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_a_state_changing_request_needs_the_csrf_token_and_this_origin(console):
    client, tokens, _ = console
    signed_in(client, tokens, ["a"])
    token = csrf_of(client)
    assert len(token) == 64
    no_token = client.post("/console/api/review/skip", json={"key": "x"})
    assert no_token.status_code == 403
    wrong = client.post(
        "/console/api/review/skip", json={"key": "x"}, headers={"X-CSRF-Token": "0" * 64}
    )
    assert wrong.status_code == 403
    elsewhere = client.post(
        "/console/api/review/skip",
        json={"key": "x"},
        headers={"X-CSRF-Token": token, "Origin": "http://127.0.0.1:9999"},
    )
    assert elsewhere.status_code == 403
    ok = client.post(
        "/console/api/review/skip",
        json={"key": "x"},
        headers={"X-CSRF-Token": token, "Origin": "http://console.test"},
    )
    assert ok.status_code == 200


def test_an_action_on_another_project_is_refused(console):
    client, tokens, _ = console
    signed_in(client, tokens, ["a"])
    headers = {"X-CSRF-Token": csrf_of(client)}
    replay = client.post(
        "/console/api/alerts/replay", json={"project": "b", "notification_ids": []}, headers=headers
    )
    assert replay.status_code == 403
    promote = client.post("/console/api/models/v1/promote", json={"project": "b"}, headers=headers)
    assert promote.status_code == 403


def test_a_failed_gate_is_promoted_only_with_the_explicit_override(tmp_path):
    from console_fakes import RecordingOperations

    store = RecordingStore(["a"])
    store.versions = [
        {
            "project_id": "a",
            "version": "v1",
            "metrics": [("accuracy", 0.4)],  # a Map, as Arrow hands it over
            "gate_passed": False,
            "gate_reasons": ["failed: x"],
        }
    ]
    ops = RecordingOperations()
    tokens = ConsoleTokens(tmp_path / "console.db")
    client = TestClient(create_app(store, tokens, operations=ops), base_url="http://console.test")
    signed_in(client, tokens, ["a"])
    headers = {"X-CSRF-Token": csrf_of(client)}
    refused = client.post("/console/api/models/v1/promote", json={"project": "a"}, headers=headers)
    assert refused.status_code == 409 and refused.json()["gate_failed"] is True
    assert ops.promoted == []
    unknown = client.post("/console/api/models/v9/promote", json={"project": "a"}, headers=headers)
    assert unknown.status_code == 404
    forced = client.post(
        "/console/api/models/v1/promote",
        json={"project": "a", "override_failed_gate": True},
        headers=headers,
    )
    assert forced.status_code == 200 and ops.promoted == [("v1", True)]


PUBLIC = {"/", "/console/signin", "/console/signout"}


def test_every_console_route_refuses_a_stranger(console):
    client, _, store = console
    from llmloop_console import app, views

    routes = [r for r in app.router.routes + views.router.routes if r.path not in PUBLIC]
    assert len(routes) >= 20
    for route in routes:
        path = route.path.replace("{uid}", "llmloop-overview").replace("{index}", "0")
        path = re.sub(r"\{[a-z_]+\}", "x", path)
        for method in route.methods - {"HEAD"}:
            response = client.request(method, path, follow_redirects=False, json={})
            assert response.status_code in (303, 401, 403), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"] == "/console/signin"
    assert store.asked == []  # not one query ran for a stranger


def test_a_failing_query_answers_with_its_reason(tmp_path):
    from llmloop.store import StoreError

    class Broken(RecordingStore):
        def query(self, sql, params=None):
            if "DISTINCT project_id" in sql:
                return super().query(sql, params)
            raise StoreError("Code: 241. Memory limit exceeded")

    tokens = ConsoleTokens(tmp_path / "console.db")
    client = TestClient(create_app(Broken(["a"]), tokens), base_url="http://console.test")
    signed_in(client, tokens, ["a"])
    response = client.get("/console/api/d/llmloop-overview/0")
    assert response.status_code == 502 and "Memory limit" in response.json()["error"]
