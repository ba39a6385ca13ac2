"""What every ``llmloop`` command shares: settings from flags, one-line errors, common options.

Each service adds its own commands in ``<service>/commands.py`` with
``add_commands(subparsers)``; heavy imports stay inside the command functions so
``llmloop --help`` answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llmloop.settings import Settings

if TYPE_CHECKING:
    from llmloop.store import Store

S = TypeVar("S", bound=Settings)

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

# Flag (argparse dest) -> settings field.
_FLAGS = {
    "data_dir": "data_dir",
    "broker": "bus_url",
    "store": "store_url",
    "host": "host",
    "port": "port",
    "log_level": "log_level",
}


class CliError(Exception):
    """A problem to tell the user about in one line, without a traceback."""


def settings_from(args: argparse.Namespace, cls: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Settings from the environment, overridden by the flags the user gave."""
    overrides: dict[str, Any] = {
        field: getattr(args, flag)
        for flag, field in _FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    return cls(**overrides)


def add_store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="embedded data dir (default .llmloop)")
    p.add_argument(
        "--store",
        metavar="URL",
        help="chdb:///PATH or clickhouse://HOST:PORT[/DB] (default: chDB in the data dir)",
    )


def add_broker_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        metavar="URL",
        help="kafka://HOST:PORT or sqlite:///PATH (default: LLMLOOP_BUS_URL, else the local log)",
    )


def add_log_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", choices=LOG_LEVELS)


def open_store_for_cli(settings: Settings) -> Store:
    """Open the store, or explain in one line why it cannot be opened now."""
    from llmloop.runtime_file import RuntimeInfo
    from llmloop.store import StoreError, StoreLocked, open_store
    from llmloop.urls import redact_url

    try:
        return open_store(settings.store_url)
    except StoreLocked as exc:
        running = RuntimeInfo.running(settings.data_dir)
        if running is not None:
            raise CliError(
                f"llmloop up (pid {running.pid}) has the store at "
                f"{redact_url(settings.store_url)} open; stop it first"
            ) from exc
        raise CliError(str(exc)) from exc
    except StoreError as exc:  # a server that is down, refuses the login...
        raise CliError(str(exc)) from exc


def query_for_cli(
    settings: Settings,
    sql: str,
    params: dict[str, Any],
    fmt: str = "JSONCompactEachRow",
    *,
    timeout_s: float = 60.0,
) -> bytes:
    """The output of a SELECT, through a running ``llmloop up`` or straight from the store.

    ``up`` owns the embedded store (one process may open it), so read commands ask it,
    as ``llmloop query`` does; with no ``up`` (or another store) they open the store.
    Parameters must be JSON values (datetimes as ``YYYY-MM-DD HH:MM:SS`` text).
    """
    import httpx
    import orjson

    from llmloop.runtime_file import TOKEN_HEADER, RuntimeInfo
    from llmloop.store import StoreError

    running = RuntimeInfo.running(settings.data_dir)
    if running is not None and running.store_url == settings.store_url:
        response = httpx.post(
            f"{running.api_url}/_local/query",
            content=orjson.dumps({"sql": sql, "format": fmt, "params": params}),
            headers={TOKEN_HEADER: running.token, "Content-Type": "application/json"},
            timeout=timeout_s,
        )
        if response.status_code != 200:
            raise CliError(response.json().get("detail", response.text))
        return response.content
    store = open_store_for_cli(settings)
    try:
        return store.query_raw(sql, fmt, params)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()


def query_json(settings: Settings, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a SELECT as dicts, through a running ``up`` or straight from the store."""
    import orjson

    raw = query_for_cli(settings, sql, params, "JSONEachRow", timeout_s=30)
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def sql_time(value: Any) -> str:
    """A datetime as a query parameter both paths of ``query_for_cli`` accept."""
    return str(value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])


async def publish_for_cli(settings: Settings, topic: str, events: list[Any]) -> None:
    """Publish events an operator's command makes (a promotion, a baseline pin): they go
    through the bus like every write, and the processor stores them."""
    from llmloop.bus import Record, open_bus
    from llmloop.events import encode_event

    bus = open_bus(settings.bus_url)
    await bus.start()
    try:
        await bus.publish(topic, [Record(e.key(), encode_event(e)) for e in events])
    finally:
        await bus.close()
