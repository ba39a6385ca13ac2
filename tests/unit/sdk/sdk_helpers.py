"""The real ingest app served over real HTTP on a memory bus (a module of its own: conftest
names clash across test directories)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from llmloop.bus import EventBus, open_bus
from llmloop.testing.server import ServedApp
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import KeyStore
from llmloop_ingest.settings import IngestSettings


class Collector:
    """The ingest API on its own loop thread, with a memory bus the test can read."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.key = KeyStore(data_dir / "keys.db").create("shop")[0]
        self.settings = IngestSettings(data_dir=data_dir, key_cache_s=0, **settings)
        self.bus: EventBus = open_bus("memory://")
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._call(self.bus.start())
        self.app = create_app(self.settings, bus=self.bus)
        self.served = ServedApp(self.app)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    @property
    def url(self) -> str:
        return self.served.url

    def events(self) -> list[bytes]:
        """Every event value on the bus so far, in order."""

        async def read() -> list[bytes]:
            from llmloop import topics

            consumer = self.bus.consumer([topics.EVENTS], f"read-{id(object())}")
            await consumer.start()
            out: list[bytes] = []
            while batch := await consumer.poll(10_000, 0.01):
                out += [m.value for m in batch]
            return out

        return self._call(read())

    def close(self) -> None:
        self.served.stop()
        self._call(self.bus.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
