"""Runbooks: every link in the shipped rules opens a file in the repo, and every command a
runbook tells the on-call person to run exists and (for SQL) runs on the real schema."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
RULES = [
    ROOT / "services/alerting/llmloop_alerting/default_rules.yaml",
    ROOT / "k8s/base/config/rules.yaml",
]
PREFIX = "https://github.com/llmloop/llmloop/blob/main/"
RUNBOOKS = sorted((ROOT / "docs/runbooks").glob("*.md"))


def commands(runbook: Path) -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", runbook.read_text(), re.S)
    return [shlex.split(block) for block in blocks]


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.parent.name)
def test_every_runbook_link_opens_a_file_in_the_repo(rules: Path) -> None:
    shipped = yaml.safe_load(rules.read_text())["rules"]
    links = [r["annotations"].get("runbook_url") for r in shipped]
    assert any(links)
    for link in filter(None, links):
        assert link.startswith(PREFIX), link
        assert (ROOT / link.removeprefix(PREFIX)).is_file(), link


def test_runbook_commands_exist_and_their_sql_runs(tmp_path: Path) -> None:
    parser = build_parser()
    store = open_store(f"chdb:///{tmp_path}/chdb")
    try:
        migrate(store)
        ran = 0
        for runbook in RUNBOOKS:
            for argv in commands(runbook):
                assert argv[0] == "llmloop", (runbook.name, argv)
                if argv[1] != "query":
                    # Parsed as the CLI would: an unknown command or flag exits here.
                    parser.parse_args([a.replace("...", "2026-01-01") for a in argv[1:]])
                    continue
                args = parser.parse_args(argv[1:])
                params = dict(p.split("=", 1) for p in args.param)
                store.query_raw(args.sql, "TabSeparated", params)
                ran += 1
    finally:
        store.close()
    assert ran >= 6 and len(RUNBOOKS) >= 4
