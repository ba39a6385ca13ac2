"""Replaying a dead letter from the console: the adapter `llmloop up` wires, on the real service."""

from __future__ import annotations

import asyncio

import pytest
from test_alerting_delivery import settings, tox

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.settings import Settings
from llmloop.testing.metrics import publish_metrics, running
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.journal import Journal
from llmloop_alerting.service import AlertingService
from llmloop_app.console import LocalOperations


@pytest.fixture
async def bus():
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


async def test_a_dead_letter_is_sent_again_only_for_its_own_project(tmp_path, bus):
    async with WebhookReceiver(hang_s=2.0) as hook:
        hook.script("/hook", [410])
        async with running(AlertingService(bus, settings(tmp_path, hook))):
            await publish_metrics(bus, tox(0.5))
            await hook.wait_requests(1)
            for _ in range(100):
                if await bus.storage.read(topics.NOTIFICATIONS_DEADLETTER, 0, 10):
                    break
                await asyncio.sleep(0.05)
            journal = Journal(tmp_path / "alerting.db")
            journal.open_sync()
            (dead,) = journal.dead_letters_sync()
            journal.close_sync()
            ops = LocalOperations(Settings(data_dir=tmp_path), bus)
            assert ops.replay_dead_letters("someone-else", [dead.id]) == 0
            assert ops.replay_dead_letters(dead.alert.project_id, [dead.id]) == 1
            replayed = await hook.wait_for(1)
    assert len(replayed) == 1 and len(hook.requests) == 2
