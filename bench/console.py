"""The console's page and API latencies (p50 / p95) on an embedded store with 1M completions.

Fills a chDB store with ``llmloop demo`` history (every dashboard has metrics,
alerts, deliveries and retraining rows), then adds --completions synthetic
completions spread over the last 7 days, with enrichments and feedback for a
third of them, generated inside the engine (INSERT ... SELECT FROM numbers()).
Then serves the console with uvicorn on a loopback port and times real HTTP
requests from a client, signed in with a console token:

    .venv/bin/python bench/console.py [--completions 1000000] [--repeat 15]

Goal (issue 15): every dashboard and list answers in well under a second (p95).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

COMPLETIONS = """
INSERT INTO completions (event_id, project_id, ts, trace_id, parent_id, model, model_version,
    prompt_template, prompt_version, prompt_format, prompt, completion, prompt_tokens,
    completion_tokens, latency_ms, cost_usd, user_id, session_id, attributes, tags, metadata)
SELECT generateUUIDv4(number), 'demo',
    now64(3) - toIntervalMillisecond(rand64(1) % (7 * 86400000)),
    if(number % 5 = 0, concat('t', toString(intDiv(number, 5))), ''), '',
    ['gpt-4o-mini', 'llama-3.1-8b'][1 + number % 2], ['base', '2026-10'][1 + intDiv(number, 7) % 2],
    'support', ['support-v1', 'support-v2'][1 + intDiv(number, 3) % 2], 'text',
    concat('How do I change my plan? case ', toString(number % 50000)),
    concat('Open Settings and choose Plan. (', toString(number), ')'),
    20 + number % 30, 40 + number % 80, 200 + (rand(2) % 900), 0.0001 * (1 + number % 7),
    concat('u', toString(number % 20000)), concat('s', toString(intDiv(number, 4))),
    map('locale', ['en-US', 'de-DE', 'fr-FR'][1 + number % 3]), [], '{{}}'
FROM numbers({n})
"""
ENRICHMENTS = """
INSERT INTO completion_enrichments (event_id, project_id, ts, model, model_version, prompt_version,
    attributes, prompt_chars, completion_chars, prompt_tokens, completion_tokens, tokens_estimated,
    latency_ms, cost_usd, cost_source, prompt_sentiment, completion_sentiment, prompt_toxicity,
    completion_toxicity, toxic, refusal, pii, demographics, embedding_sample_rate, embedded)
SELECT event_id, project_id, ts, model, model_version, prompt_version, attributes,
    length(prompt), length(completion), assumeNotNull(prompt_tokens),
    assumeNotNull(completion_tokens), false, latency_ms, cost_usd, 'event', 0.1, 0.2, 0.01, 0.02,
    cityHash64(event_id) % 100 = 0, cityHash64(event_id) % 40 = 0, [], [], 0.0, false
FROM completions WHERE project_id = 'demo' AND user_id != '' AND startsWith(completion, 'Open')
"""
FEEDBACK = """
INSERT INTO feedback (event_id, project_id, ts, completion_id, kind, source, value, scale_min,
    scale_max, comment, correction, user_id, metadata)
SELECT generateUUIDv4(cityHash64(event_id)), project_id, ts + toIntervalSecond(30), event_id,
    'thumbs', 'user', if(cityHash64(event_id) % 4 = 0, -1, 1), NULL, NULL, '', '', user_id, '{{}}'
FROM completions WHERE project_id = 'demo' AND startsWith(completion, 'Open')
    AND cityHash64(event_id) % 3 = 0
"""


def fill(store, n: int) -> None:  # type: ignore[no-untyped-def]
    from llmloop.store.migrate import migrate
    from llmloop_app.backfill import backfill

    migrate(store)
    t = time.perf_counter()
    backfill(store, hours=1.0, events_per_minute=40)
    print(f"demo history (1 h): {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    store.command(COMPLETIONS.format(n=n))
    store.command(ENRICHMENTS)
    store.command(FEEDBACK)
    total = store.query("SELECT count() FROM completions").scalar()
    feedback = store.query("SELECT count() FROM feedback").scalar()
    print(
        f"bulk: {n:,} completions in {time.perf_counter() - t:.0f} s; store has {total:,} "
        f"completions, {feedback:,} feedback"
    )


def serve(app, port: int):  # type: ignore[no-untyped-def]
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--data-dir", type=Path, help="reuse a filled store (default: a temp dir)")
    args = parser.parse_args()

    import httpx

    from llmloop.contracts.panels import DASHBOARDS
    from llmloop.store import open_store
    from llmloop.store.migrate import migrate
    from llmloop_console.app import create_app
    from llmloop_console.tokens import ConsoleTokens

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="llmloop-bench-console-"))
    store = open_store(f"chdb:///{data_dir}/chdb")
    migrate(store)
    if store.query("SELECT count() FROM completions").scalar() < args.completions:
        fill(store, args.completions)
    tokens = ConsoleTokens(data_dir / "console.db")
    token, _ = tokens.create(["demo"], note="bench")
    server = serve(create_app(store, tokens), 7399)
    client = httpx.Client(base_url="http://127.0.0.1:7399", timeout=60)
    client.get(f"/console/signin?token={token}")

    one = client.get("/console/api/conversations?range=7d").json()
    cid = one["rows"][0]["id"]
    trace = store.query(
        "SELECT toString(event_id) FROM completions WHERE trace_id != '' LIMIT 1"
    ).scalar()
    fp = store.query(
        "SELECT fingerprint FROM notification_attempts GROUP BY 1 ORDER BY count() DESC LIMIT 1"
    ).scalar()
    targets: list[tuple[str, list[str]]] = []
    for d in DASHBOARDS:
        targets.append((f"page  {d.uid}", [f"/console/d/{d.uid}"]))
        for rng in ("6h", "7d"):
            targets.append(
                (
                    f"panels {d.uid} ({rng}, all {len(d.panels)})",
                    [f"/console/api/d/{d.uid}/{i}?range={rng}" for i in range(len(d.panels))],
                )
            )
    targets += [
        ("api   filters (7d)", ["/console/api/filters?range=7d"]),
        ("api   conversations page 1 (7d)", ["/console/api/conversations?range=7d"]),
        (
            "api   conversations page 2 (cursor)",
            [f"/console/api/conversations?range=7d&before={one['next_before']}"],
        ),
        ("api   conversations search (7d)", ["/console/api/conversations?range=7d&q=case%2012345"]),
        (
            "api   conversations flag=negative",
            ["/console/api/conversations?range=7d&flag=negative"],
        ),
        ("api   conversation view", [f"/console/api/conversations/{cid}"]),
        ("api   conversation view (trace)", [f"/console/api/conversations/{trace}"]),
        ("api   alerts (7d)", ["/console/api/alerts?range=7d"]),
        ("api   alert detail", [f"/console/api/alerts/{fp}"]),
        ("api   retraining (7d)", ["/console/api/retraining?range=7d"]),
        ("api   review next pair (6h)", ["/console/api/review/next?kind=pair&range=6h"]),
        ("api   review next single (6h)", ["/console/api/review/next?kind=single&range=6h"]),
    ]
    print(f"\n{'request':<52}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name, paths in targets:
        samples = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for path in paths:  # a dashboard's panels, one after another (a browser runs 6 at once)
                response = client.get(path)
                # review/next runs its candidate query every time, also while a lease is held
                assert response.status_code == 200, (path, response.text[:300])
            samples.append((time.perf_counter() - t) * 1000)
        samples.sort()
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        print(f"{name:<52}{statistics.median(samples):>9.0f}{p95:>9.0f}{samples[-1]:>9.0f}")
    server.should_exit = True
    store.close()


if __name__ == "__main__":
    main()
