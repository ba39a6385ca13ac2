"""The llmloop Grafana dashboards: ``python grafana/build.py`` writes grafana/dashboards/*.json.

The dashboards and their panels live in the panel catalogue
(``llmloop.contracts.panels``), which also drives the console; this file only
renders them the way Grafana wants them. Panels query ClickHouse through the
official plugin (grafana-clickhouse-datasource) with its macros
(``$__timeFilter``, ``$__timeInterval``) and the template variables project,
model, prompt_version and model_version (multi-value, "All" by default).
tests/contract/test_dashboards.py expands every panel's SQL the way the plugin
does, runs it on chDB against data from the demo generator, and checks the
committed JSON is what this file builds from the catalogue.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llmloop.contracts.panels import DASHBOARDS, VARIABLES, Dashboard, Panel

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "llmloop-clickhouse"}
OUT = Path(__file__).parent / "dashboards"


def variable(name: str, label: str, column: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": f"SELECT DISTINCT {column} FROM completions ORDER BY 1",
        "definition": f"SELECT DISTINCT {column} FROM completions ORDER BY 1",
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,  # on time-range change
        "sort": 1,
    }


GRAFANA_VARIABLES = [variable(name, label, column) for name, label, column in VARIABLES]


def rule_line(rule_name: str) -> dict:
    """Field config that draws the shipped rule's threshold on a time series."""
    from llmloop_alerting.rules import load_rules

    (rule,) = [r for r in load_rules(env={}).rules if r.name == rule_name]
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": rule.threshold}],
        },
        "custom": {"thresholdsStyle": {"mode": "line+area"}},
    }


def render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    timeseries = panel.kind == "timeseries"
    overrides = rule_line(panel.threshold_rule) if panel.threshold_rule else {}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": {"unit": panel.unit, **overrides}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}}
        if timeseries
        else {},
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "editorType": "sql",
                "queryType": "timeSeries" if timeseries else "table",
                "format": 0 if timeseries else 1,
                "rawSql": " ".join(panel.sql.split()),
            }
        ],
    }


def render_dashboard(d: Dashboard) -> dict:
    rendered, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(d.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + row_height
            row_height = 0
        rendered.append(render_panel(panel, i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.question,
        "tags": ["llmloop"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": GRAFANA_VARIABLES},
        "panels": rendered,
    }


def render_all() -> dict[str, str]:
    return {
        f"{d.uid}.json": json.dumps(render_dashboard(d), indent=2, sort_keys=True) + "\n"
        for d in DASHBOARDS
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    files = render_all()
    stale = [
        n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text
    ]
    for name in stale:
        (OUT / name).write_text(files[name])
    print(f"wrote {', '.join(stale)}" if stale else "dashboards already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
