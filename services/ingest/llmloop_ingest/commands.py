"""``llmloop ingest``: the ingest API as its own process."""

from __future__ import annotations

import argparse
from typing import Any

from llmloop.cliutil import add_broker_option, add_log_option, settings_from


def cmd_ingest(args: argparse.Namespace) -> int:
    import uvicorn

    from llmloop.logs import setup_logging
    from llmloop_ingest.app import create_app

    settings = settings_from(args)
    setup_logging(settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="run the ingest API alone (distributed runtime)",
        description="Serve POST /v1/events and publish to --broker. Scale it horizontally.",
    )
    add_broker_option(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 in containers)")
    p.add_argument("--port", type=int, help="port (default 7070)")
    add_log_option(p)
    p.set_defaults(func=cmd_ingest)
