"""The service registry: each service declares itself once, in a ``ServiceSpec``.

A service package holds one ``spec.py`` with a module attribute ``SPEC`` and
registers it as an entry point of the ``llmloop.services`` group (one line in
``pyproject.toml``). The composition package (``llmloop_app``) finds the specs
with ``discover()`` and builds everything from them: the CLI's commands, what
``llmloop up`` runs beside the API, what ``llmloop <service>`` runs alone.
Nothing else names a service, so adding one is a folder plus that line.

A spec is cheap to import: its hooks import the service's modules when called,
so ``llmloop --help`` does not load FastAPI, chDB or a model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any, Protocol

from llmloop.bus import EventBus, open_bus
from llmloop.lifecycle import stop_on_signals, tune_gc, tune_memory
from llmloop.settings import Settings
from llmloop.store import Store, open_store
from llmloop.urls import redact_url

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "llmloop.services"


class Runnable(Protocol):
    """A long-running part of a service."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then return after finishing the current batch."""
        ...


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the runner hands to a service: the shared settings and the adapters it opened.

    ``metrics`` is the Prometheus registry that ``/metrics`` serves in ``llmloop up``
    (None when the process has no HTTP API); ``parts`` holds the runnables that the
    services started before this one made, by name (for gauges that read them).
    """

    settings: Settings
    bus: EventBus
    store: Store | None
    metrics: Any = None
    parts: Mapping[str, Runnable] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service, declared once.

    * ``name``: what it is called on the command line and in logs;
    * ``summary``: what it does, in one line (for people reading the spec);
    * ``extra``: the pip extra that installs what its parts import (``llmloop[NAME]``);
    * ``settings``: its settings class (the shared ``LLMLOOP_*`` ones plus its own);
    * ``add_commands(subparsers)``: its CLI commands;
    * ``parts(wiring)``: what it runs on a bus (and store) beside the others in
      ``llmloop up``, by name; ``needs_store`` says whether it reads the store, and
      ``store_optional`` that, as a process of its own on chDB (which one process may
      open: the processor's), it runs without;
    * ``http(wiring)``: the ASGI app of a service that serves HTTP (ingest), which
      ``llmloop up`` serves on ``--port``.
    """

    name: str
    summary: str
    extra: str
    settings: type[Settings] = Settings
    add_commands: Callable[[Any], None] | None = None
    parts: Callable[[Wiring], Mapping[str, Runnable]] | None = None
    needs_store: bool = False
    store_optional: bool = False
    http: Callable[[Wiring], Any] | None = None
    order: int = 50  # start order in `llmloop up`: lower first (the sink before readers)


def discover(group: str = ENTRY_POINT_GROUP) -> list[ServiceSpec]:
    """Every registered service, in start order.

    A spec imports only its settings (pydantic), so every registered service loads;
    one whose spec cannot be imported is left out, with the reason at debug level.
    Its parts import what its extra installs when they are built.
    """
    specs: dict[str, ServiceSpec] = {}
    for point in entry_points(group=group):
        try:
            spec = point.load()
        except ImportError as exc:
            log.debug("service %s not available: %s", point.name, exc)
            continue
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {point.name} = {point.value} is not a ServiceSpec")
        if spec.name in specs:
            raise ValueError(f"two services are called {spec.name!r}: {point.value}")
        specs[spec.name] = spec
    return sorted(specs.values(), key=lambda s: (s.order, s.name))


def named(name: str) -> ServiceSpec:
    """The installed service called ``name`` (``llmloop <name>`` runs it alone)."""
    for spec in discover():
        if spec.name == name:
            return spec
    raise LookupError(f"no service {name!r} is installed (see `llmloop --help`)")


def derive_settings(cls: type[Settings], base: Settings) -> Settings:
    """``base`` as ``cls``: what was set explicitly (flags) wins, the rest is ``cls``'s own
    reading of the environment and defaults. The one way every service's settings are
    made from the shared ones; ``cls`` validates the result like any other input."""
    if isinstance(base, cls):
        return base
    return cls(**base.model_dump(exclude_unset=True))


def wiring_for(spec: ServiceSpec, base: Wiring) -> Wiring:
    """The wiring ``spec`` gets: its own settings, the store only if it reads it."""
    return replace(
        base,
        settings=derive_settings(spec.settings, base.settings),
        store=base.store if spec.needs_store else None,
    )


def build_parts(specs: list[ServiceSpec], base: Wiring) -> dict[str, Runnable]:
    """What ``specs`` run, by name, made in start order (later ones see earlier parts)."""
    parts: dict[str, Runnable] = {}
    for spec in specs:
        if spec.parts is None:
            continue
        made = spec.parts(wiring_for(spec, replace(base, parts=dict(parts))))
        for name in made:
            if name in parts:
                raise ValueError(f"two parts are called {name!r} ({spec.name} and another)")
        parts.update(made)
    return parts


async def run_parts(parts: Mapping[str, Runnable], stop: asyncio.Event) -> None:
    """Run every part until ``stop`` is set or one of them fails; then stop the rest.

    Each part finishes its current batch. The first failure is re-raised after the
    others stopped, so a process never keeps running with a part missing.
    """
    tasks = [asyncio.create_task(part.run(stop), name=name) for name, part in parts.items()]
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        stopping.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("%s failed: %r", task.get_name(), result)
            raise result


async def serve(spec: ServiceSpec, settings: Settings) -> None:
    """Run one service on its own (the distributed runtime) until SIGINT / SIGTERM."""
    if spec.parts is None:
        raise ValueError(f"service {spec.name!r} runs nothing on a bus")
    tune_memory()
    settings = derive_settings(spec.settings, settings)
    embedded = settings.store_url.startswith("chdb:")
    store = None
    if spec.needs_store and not (spec.store_optional and embedded):
        store = open_store(settings.store_url)
    elif spec.needs_store:
        log.info("%s: not opening the embedded store (the processor's process owns it)", spec.name)
    bus = open_bus(settings.bus_url)
    where = f", store {redact_url(settings.store_url)}" if store is not None else ""
    log.info(
        "%s: bus %s%s, data %s", spec.name, redact_url(settings.bus_url), where, settings.data_dir
    )
    try:
        async with stop_on_signals() as stop:
            await bus.start()
            try:
                parts = build_parts([spec], Wiring(settings, bus, store))
                tune_gc()  # after start-up: its heap is frozen, batches collect less often
                await run_parts(parts, stop)
            finally:
                await bus.close()
    finally:
        if store is not None:
            store.close()
