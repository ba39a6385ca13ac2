"""``llmloop processor``: the processor as its own process."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from llmloop.cliutil import (
    CliError,
    add_broker_option,
    add_log_option,
    add_store_options,
    settings_from,
)


def cmd_processor(args: argparse.Namespace) -> int:
    from llmloop.logs import setup_logging
    from llmloop.store import StoreError
    from llmloop_processor.service import serve

    settings = settings_from(args)
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "processor",
        help="run the processor alone (distributed runtime)",
        description="Consume every topic from --broker and write --store, each event once. "
        "The only writer of ClickHouse; run one replica per few partitions.",
    )
    add_store_options(p)
    add_broker_option(p)
    add_log_option(p)
    p.set_defaults(func=cmd_processor)
