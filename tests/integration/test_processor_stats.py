"""The processor as `llmloop up` runs it: sink + enricher + statistics timer on a bus and chDB.

Real parts: the memory bus port, chDB, MiniLM embeddings, VADER, profanity-check.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmloop import topics
from llmloop.bus import EventBus, Record, open_bus
from llmloop.events import CompletionLogged, ThumbsFeedback, encode_event
from llmloop.store import Store, open_store
from llmloop.store.migrate import migrate
from llmloop.testing.corpus import prompts
from llmloop.testing.up import LLMLOOP, Up, wait_for
from llmloop_processor.profiles import read_profile
from llmloop_processor.runtime import services
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.stats import StatsRunner
from llmloop_processor.writer import StoreWriter

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
INTERVAL = 600.0


def traffic() -> tuple[list[CompletionLogged], list[CompletionLogged], list[ThumbsFeedback]]:
    """300 cooking prompts a day ago (the reference), 300 programming prompts in the window.

    In the window, de-DE users give a thumbs down 60% of the time, en-US users 10%.
    """
    rng = random.Random(0)

    def completion(text: str, when: datetime) -> CompletionLogged:
        return CompletionLogged(
            model="gpt-4o-mini",
            project_id="shop",
            prompt_version="v1",
            prompt=text,
            completion="Sure, here is how.",
            latency_ms=200 + rng.random() * 50,
            attributes={"locale": rng.choice(["de-DE", "en-US"])},
            timestamp=when,
        )

    old = [
        completion(t, NOW - timedelta(days=1, seconds=i))
        for i, t in enumerate(prompts("cooking", 300, 3))
    ]
    new = [
        completion(t, NOW - timedelta(seconds=1 + i))
        for i, t in enumerate(prompts("programming", 300, 4))
    ]
    feedback = [
        ThumbsFeedback(
            completion_id=c.event_id,
            project_id="shop",
            value=-1 if rng.random() < (0.6 if c.attributes["locale"] == "de-DE" else 0.1) else 1,
            timestamp=c.timestamp + timedelta(milliseconds=500),
        )
        for c in new
    ]
    return old, new, feedback


def settings(tmp_path: Path, **extra: object) -> ProcessorSettings:
    return ProcessorSettings(
        data_dir=tmp_path,
        processor_stats_interval_s=INTERVAL,
        processor_stats_window_s=INTERVAL,
        processor_permutations=100,
        **{"processor_reference_size": 300, "processor_feedback_settle_s": 0, **extra},  # type: ignore[arg-type]
    )


async def run_until(
    bus: EventBus,
    store: Store,
    s: ProcessorSettings,
    sql: str,
    expected: int,
    only: tuple[str, ...] | None = None,
) -> None:
    stop = asyncio.Event()
    parts = services(s, bus, store)
    parts.pop("stats")  # the timer is driven by hand below, on a fixed clock
    parts = {name: p for name, p in parts.items() if only is None or name in only}
    tasks = [asyncio.create_task(p.run(stop)) for p in parts.values()]
    try:
        for _ in range(600):
            if store.query(sql).scalar() >= expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{sql} never reached {expected}")
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def publish(bus: EventBus, events: list) -> None:
    await bus.publish(topics.EVENTS, [Record(key=e.key(), value=encode_event(e)) for e in events])


@pytest.fixture
async def bus():
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


async def test_enrichment_drift_bias_and_feedback_metrics_land_once(bus, store, tmp_path) -> None:
    old, new, feedback = traffic()
    # Every completion embedded: a fixed rate of 1 (the adaptive sampler would size the
    # sample of a 600-event burst to the machine).
    s = settings(tmp_path, processor_embed_adaptive=False)
    await publish(bus, old + new + feedback)
    await bus.publish(topics.EVENTS, [Record(key=None, value=b'{"type": "completion"}')])
    await run_until(bus, store, s, "SELECT count() FROM completion_embeddings", 600)
    assert store.query(
        "SELECT countIf(embedding_state = 'sampled'), count() FROM completion_enrichments"
    ).rows == [(600, 600)]

    runner = StatsRunner(store, bus, s, clock=NOW.timestamp)
    published = await runner.tick()
    assert published > 0 and await runner.tick() == 0  # one window, computed once
    # A restarted processor recomputes the same window: same metric ids, stored once.
    assert await StatsRunner(store, bus, s, clock=NOW.timestamp).tick() == published
    await run_until(bus, store, s, "SELECT count() FROM metrics", published)
    await asyncio.sleep(0.3)
    rows = store.query(
        "SELECT name, labels, value, sample_size, p_value FROM metrics ORDER BY name"
    ).dicts()
    assert len(rows) == published
    for r in rows:
        r["labels"] = dict(r["labels"])  # a ClickHouse Map reads back as pairs
    by = {
        (
            r["name"],
            r["labels"].get("field")
            or r["labels"].get("feature")
            or r["labels"].get("outcome")
            or "",
            r["labels"].get("segment", ""),
        ): r
        for r in rows
    }
    mmd = by[("drift_embedding_mmd", "prompt", "")]
    # The test ran on the window's distinct prompts (repeats of a template count once, and
    # so do near-duplicates), and says how many it kept of how many, against how many
    # reference rows.
    distinct = store.query(
        "SELECT uniqExact(prompt) FROM completions WHERE ts >= {t:DateTime64(3, 'UTC')}",
        {"t": NOW - timedelta(seconds=INTERVAL)},
    ).scalar()
    assert mmd["p_value"] < 0.05 and 0.9 * distinct <= mmd["sample_size"] <= distinct < 300
    ((rows_total, reference_size, raw_below),) = store.query(
        "SELECT rows_total, reference_size, p_value_raw <= p_value FROM metrics "
        "WHERE name = 'drift_embedding_mmd' AND labels['field'] = 'prompt'"
    ).rows
    assert rows_total == 300 and 200 < reference_size <= 300 and raw_below
    assert mmd["labels"]["reference"] == "first_n" and mmd["labels"]["model"] == "gpt-4o-mini"
    assert by[("drift_embedding_score", "prompt", "")]["value"] > 1.5
    auc = by[("drift_embedding_domain_auc", "prompt", "")]
    assert auc["value"] > 0.9 and auc["p_value"] < 0.001
    assert by[("drift_embedding_centroid_cos", "prompt", "")]["value"] > 0.2
    # Every completion is "Sure, here is how.": one distinct text, nothing to test.
    assert ("drift_embedding_mmd", "completion", "") not in by
    gap = by[("bias_gap", "negative_feedback", "")]
    assert gap["labels"]["attribute"] == "locale" and gap["p_value"] < 0.001 and gap["value"] > 0.3
    assert by[("bias_segment_value", "negative_feedback", "de-DE")]["value"] > 0.4
    worse = by[("bias_segment_gap", "negative_feedback", "de-DE")]
    assert worse["value"] > 0.3 and worse["p_value"] < 0.001
    assert worse["sample_size"] == min(
        by[("bias_segment_value", "negative_feedback", "de-DE")]["sample_size"],
        by[("bias_segment_value", "negative_feedback", "en-US")]["sample_size"],
    )
    thumbs = by[("feedback_thumbs_up_rate", "", "")]
    assert thumbs["sample_size"] == 300 and 0.5 < thumbs["value"] < 0.8
    assert ("drift_feature_ks", "latency_ms", "") in by
    # What the default alert rules watch, over every completion of the window.
    negative = by[("negative_feedback_rate", "", "")]
    assert (
        negative["value"] == pytest.approx(1 - thumbs["value"]) and negative["sample_size"] == 300
    )
    assert 235 <= by[("latency_p95_ms", "", "")]["value"] <= 250
    assert by[("latency_p95_ms", "", "")]["sample_size"] == 300
    assert (
        by[("toxicity_rate", "", "")]["value"] == 0 and by[("refusal_rate", "", "")]["value"] == 0
    )
    assert by[("cost_usd_per_hour", "", "")]["value"] > 0  # priced from the price table

    stored = store.query("SELECT sample_size, profile FROM window_profiles FINAL").rows
    assert len(stored) == 1 and stored[0][0] == 300  # computed three times, one row
    columns = read_profile(stored[0][1]).to_pandas()
    assert columns.loc["latency_ms", "counts/n"] == 300
    assert 200 <= columns.loc["latency_ms", "distribution/mean"] <= 250


async def test_statistics_wait_for_the_windows_enrichment(bus, store, tmp_path, caplog) -> None:
    old, new, _ = traffic()
    s = settings(tmp_path, processor_embed_adaptive=False)
    await publish(bus, old + new)
    # Only the sink ran: the window's completions are stored, none of them enriched.
    await run_until(bus, store, s, "SELECT count() FROM completions", 600, only=("processor",))
    assert store.query("SELECT count() FROM completion_enrichments").scalar() == 0
    runner = StatsRunner(store, bus, s, clock=NOW.timestamp)
    caplog.set_level("INFO", logger="llmloop_processor.stats")
    assert await runner.tick() == 0 and runner.deferred  # waits, computes nothing
    assert "enrichment not caught up, waiting" in caplog.text
    # Enrichment and embeddings catch up: the same runner computes the window, once.
    await run_until(bus, store, s, "SELECT count() FROM completion_embeddings", 600)
    published = await runner.tick()
    assert published > 0 and not runner.deferred and await runner.tick() == 0
    # A window still behind past most of the next interval is computed on what was
    # enriched, and the log says so.
    store.command("TRUNCATE TABLE completion_embeddings")
    late = StatsRunner(store, bus, s, clock=lambda: NOW.timestamp() + 0.9 * INTERVAL)
    await late.tick()
    assert not late.deferred and "enrichment still behind" in caplog.text


async def test_sampling_records_its_rate_and_embeds_a_fraction(bus, store, tmp_path) -> None:
    old, _, _ = traffic()
    # The model in this process this time (the first test runs it in a child).
    s = settings(
        tmp_path,
        processor_embed_sample_rates={"gpt-4o-mini": 0.25},
        processor_embed_in_child=False,
        processor_embed_adaptive=False,
    )
    await publish(bus, old)
    await run_until(
        bus,
        store,
        s,
        "SELECT (SELECT count() FROM completion_enrichments) = 300 AND "
        "(SELECT count() FROM completion_embeddings) = "
        "(SELECT countIf(embedding_state = 'sampled') FROM completion_enrichments)",
        1,
    )
    embedded, rate = store.query(
        "SELECT countIf(embedding_state = 'sampled'), any(embedding_sample_rate) "
        "FROM completion_enrichments"
    ).rows[0]
    assert 40 <= embedded <= 110 and rate == 0.25
    assert store.query(
        "SELECT countIf(length(prompt_embedding) = 384), uniqExact(event_id), any(embedder) "
        "FROM completion_embeddings"
    ).rows == [(embedded, embedded, "onnx-int8/256")]


def test_baseline_set_and_report_commands(tmp_path: Path) -> None:
    old, new, _ = traffic()
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    from llmloop_processor.embed import Embedder, Sampler
    from llmloop_processor.embedding import EmbeddingWriter
    from llmloop_processor.enrichment import Enricher, EnrichmentWriter

    events = old[:120] + new[:120]
    EnrichmentWriter(store, Enricher(Sampler(1.0))).write(events)
    embeddings = EmbeddingWriter(store, Embedder(), Sampler(1.0))
    embeddings.write(events, embeddings.decisions(events))
    store.close()

    def llmloop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LLMLOOP, *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    day_ago = (NOW - timedelta(days=1, hours=1)).isoformat()
    pin = ("baseline", "set", "--model", "gpt-4o-mini", "--from", day_ago)
    # While `llmloop up` holds the store (issue 14: this used to fail): the command reads
    # through up, publishes the pin, and up's processor stores it.
    up = Up(tmp_path)
    try:
        pinned = llmloop(*pin, "--to", (NOW - timedelta(hours=1)).isoformat())
        assert pinned.returncode == 0, pinned.stderr
        assert (
            "baseline pinned for shop/gpt-4o-mini" in pinned.stdout
            and "120 completions" in pinned.stdout
        )
        wait_for(tmp_path, "SELECT count(), any(project_id) FROM drift_baselines", "1\tshop")
        missing = llmloop("baseline", "set", "--model", "nope", "--from", day_ago)
        assert missing.returncode != 0
        assert "no enriched completions of model 'nope'" in missing.stderr
    finally:
        assert up.stop() == 0

    out = tmp_path / "report.html"
    report = llmloop(
        "report",
        "--model",
        "gpt-4o-mini",
        "--from",
        (NOW - timedelta(hours=1)).isoformat(),
        "--to",
        NOW.isoformat(),
        "--out",
        str(out),
    )
    assert report.returncode == 0, report.stderr
    assert "120 reference completions [pinned] vs 120 current" in report.stderr
    html = out.read_text()
    assert "Drift in embeddings" in html or "prompt" in html
    assert out.stat().st_size > 10_000


async def test_first_n_reference_is_not_compared_with_itself(bus, store, tmp_path) -> None:
    """While the window still holds the first N events, drift uses only what came after."""
    _, new, _ = traffic()
    s = settings(tmp_path, processor_embed=False, processor_reference_size=200)
    await publish(bus, new)
    await run_until(bus, store, s, "SELECT count() FROM completion_enrichments", 300)
    metrics = StatsRunner(store, bus, s).compute(NOW - timedelta(seconds=INTERVAL), NOW)
    ks = [m for m in metrics if m.name == "drift_feature_ks"]
    # 200 reference rows against the distinct prompts of the 100 after them.
    assert ks and all(m.reference_size <= 200 and m.rows_total == 100 for m in ks)
    assert all(m.sample_size <= 100 for m in ks)
    assert not [m for m in metrics if m.name.startswith("drift_embedding")]  # nothing embedded
    assert [m for m in metrics if m.name == "bias_gap"]  # bias still covers the whole window


async def test_feedback_metrics_wait_for_the_feedback_to_settle(bus, store, tmp_path) -> None:
    """With a settle lag, negative-feedback bias and feedback rates describe the window that
    ended that long ago, counting the feedback that arrived after it closed."""
    old, new, feedback = traffic()
    s = settings(tmp_path, processor_embed=False, processor_feedback_settle_s=600)
    late = [f.model_copy(update={"timestamp": NOW + timedelta(seconds=300)}) for f in feedback]
    await publish(bus, old + new + late)
    await run_until(
        bus,
        store,
        s,
        "SELECT (SELECT count() FROM completion_enrichments) + (SELECT count() FROM feedback)",
        len(old + new + late),
    )
    runner = StatsRunner(store, bus, s, clock=lambda: NOW.timestamp() + 600)
    metrics = runner.compute(NOW + timedelta(seconds=600 - INTERVAL), NOW + timedelta(seconds=600))
    feedback_based = [
        m
        for m in metrics
        if m.name.startswith("feedback_")
        or m.name == "negative_feedback_rate"
        or m.labels.get("outcome") == "negative_feedback"
    ]
    assert feedback_based and all(m.window_end == NOW for m in feedback_based)
    gap = [m for m in feedback_based if m.name == "bias_segment_gap"]
    assert max(m.value for m in gap) > 0.3  # the late thumbs of de-DE are in
    thumbs = next(m for m in metrics if m.name == "feedback_thumbs_up_rate")
    assert thumbs.sample_size == 300


async def test_a_window_is_computed_once_across_restarts_and_its_two_parts(
    bus, store, tmp_path
) -> None:
    """A runner leaves out what the store holds for a window: once the window ending NOW is
    stored, a restarted runner computes nothing for it; 600 s later (the settle lag) the
    same window's feedback part is still computed (only the now-part is stored), and once
    that is stored too, a second runner computes nothing again."""
    old, new, feedback = traffic()
    s = settings(tmp_path, processor_embed=False, processor_feedback_settle_s=600)
    await publish(bus, old + new + feedback)
    await run_until(
        bus,
        store,
        s,
        "SELECT (SELECT count() FROM completion_enrichments) + (SELECT count() FROM feedback)",
        len(old + new + feedback),
    )
    window = (NOW - timedelta(seconds=INTERVAL), NOW)
    later = (window[0] + timedelta(seconds=600), window[1] + timedelta(seconds=600))
    now_part = StatsRunner(store, bus, s).compute(*window)
    assert {m.name for m in now_part} >= {"latency_p95_ms", "bias_gap"}
    assert not [m for m in now_part if m.labels.get("outcome") == "negative_feedback"]
    StoreWriter(store).write(now_part)

    restarted = StatsRunner(store, bus, s)
    assert restarted.compute(*window) == [] and restarted.last_stored == 1
    assert restarted.last_keys == 0

    settled = StatsRunner(store, bus, s).compute(*later)
    assert settled and all(m.window_end == NOW for m in settled)  # the feedback part, due
    assert {m.name for m in settled} >= {"negative_feedback_rate", "bias_gap"}
    StoreWriter(store).write(settled)
    again = StatsRunner(store, bus, s)
    assert again.compute(*later) == [] and again.last_stored == 1
    stored = store.query("SELECT count(), uniqExact(event_id) FROM metrics").rows
    assert stored == [(len(now_part) + len(settled),) * 2]
