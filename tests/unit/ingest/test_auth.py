"""API keys: 401 without one, a project per key, revocation, the key file for replicas, the CLI."""

from __future__ import annotations

import os

import pytest
from ingest_helpers import auth, client_for, published

from llmloop.events import parse_event
from llmloop.testing.server import completion
from llmloop_app.cli import main
from llmloop_ingest.app import create_app
from llmloop_ingest.auth import ApiKeys
from llmloop_ingest.keys import KeyFile, KeyStore, hash_key, write_key_file
from llmloop_ingest.settings import IngestSettings


@pytest.fixture
def settings(tmp_path) -> IngestSettings:
    return IngestSettings(data_dir=tmp_path, key_cache_s=0)


@pytest.mark.parametrize(
    "headers",
    [{}, auth("llk_not-a-key"), {"Authorization": "Basic dXNlcjpwYXNz"}, auth("x" * 500)],
)
async def test_no_or_bad_key_is_401_saying_how_to_get_one(bus, keys, settings, headers):
    async with client_for(create_app(settings, bus=bus)) as client:
        response = await client.post("/v1/events", json={"events": [completion()]}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "llmloop keys create" in response.json()["error"]
    assert await published(bus) == []


async def test_each_key_writes_only_its_own_project(bus, keys, settings):
    app = create_app(settings, bus=bus)
    for key in keys.values():
        async with client_for(app, key) as client:
            events = [completion(project_id="bank"), completion(project_id="shop")]
            assert (await client.post("/v1/events", json={"events": events})).status_code == 202
    async with client_for(app) as client:  # X-API-Key works as well as Bearer
        response = await client.post(
            "/v1/events", json={"events": [completion()]}, headers={"X-API-Key": keys["bank"]}
        )
        assert response.status_code == 202
    projects = [parse_event(m.value).project_id for m in await published(bus)]
    assert projects == ["shop", "shop", "bank", "bank", "bank"]


async def test_a_revoked_key_stops_working(bus, settings, tmp_path, capsys):
    assert main(["keys", "create", "--project", "shop", "--data-dir", str(tmp_path)]) == 0
    key = capsys.readouterr().out.strip()
    async with client_for(create_app(settings, bus=bus), key) as client:
        assert (await client.post("/v1/events", json={"events": [completion()]})).is_success
        key_id = KeyStore(tmp_path / "keys.db").list_keys()[0].key_id
        assert main(["keys", "revoke", key_id[:8], "--data-dir", str(tmp_path)]) == 0
        response = await client.post("/v1/events", json={"events": [completion()]})
        assert response.status_code == 401


def test_keys_cli_prints_a_key_once_and_stores_only_its_hash(tmp_path, capsys):
    assert main(["keys", "create", "--project", "shop", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("llk_") and "shown only this once" in out.err
    assert key.encode() not in (tmp_path / "keys.db").read_bytes()
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "shop" in listing and hash_key(key)[:12] in listing and key not in listing
    assert main(["keys", "create", "--project", "Not Valid", "--data-dir", str(tmp_path)]) == 1
    assert "lowercase letters" in capsys.readouterr().err
    assert main(["keys", "revoke", "00000000", "--data-dir", str(tmp_path)]) == 1
    assert "no key with id" in capsys.readouterr().err


async def test_replicas_share_keys_through_an_exported_file(bus, tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    key, _ = store.create("shop")
    other, info = store.create("bank")
    path = tmp_path / "keys.txt"
    assert write_key_file(path, store) == 2
    lookup = KeyFile(path, check_every_s=0)
    app = create_app(
        IngestSettings(data_dir=tmp_path / "elsewhere"),
        bus=bus,
        authenticator=ApiKeys(lookup, cache_s=0),
    )
    async with client_for(app, other) as client:
        assert (await client.post("/v1/events", json={"events": [completion()]})).is_success
        store.revoke(info.key_id)
        write_key_file(path, store)
        os.utime(path, ns=(1, 1))  # a different stamp even within one clock tick
        assert (await client.post("/v1/events", json={"events": [completion()]})).status_code == 401
    async with client_for(app, key) as client:
        assert (await client.post("/v1/events", json={"events": [completion()]})).is_success


def test_a_malformed_key_file_fails_at_start_naming_the_line(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("# comment\nshop 1234\n")
    with pytest.raises(ValueError, match=r"keys\.txt:2"):
        KeyFile(path)


async def test_auth_none_is_one_local_project(bus, tmp_path):
    app = create_app(IngestSettings(data_dir=tmp_path, auth="none"), bus=bus)
    async with client_for(app) as client:
        assert (await client.post("/v1/events", json={"events": [completion()]})).is_success
    assert parse_event((await published(bus))[0].value).project_id == "default"
