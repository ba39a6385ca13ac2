"""Text features and enrichment rows, list in, rows out."""

from __future__ import annotations

import random

import pytest

from llmloop.events import CompletionLogged
from llmloop_processor.embed import Sampler
from llmloop_processor.enrichment import DEFAULT_PRICES, Enricher, estimate_tokens, price_for
from llmloop_processor.features import is_refusal, pii_flags


def test_refusals_are_recognised_and_answers_are_not() -> None:
    assert is_refusal("I'm sorry, but I can't help with that request.")
    assert is_refusal("As an AI, I cannot provide medical advice.")
    assert is_refusal("Here is the thing: I can't assist with that.")
    assert not is_refusal("Sure! Roast the chicken at 200 C for an hour.")


def test_refusal_gate_never_changes_the_answer() -> None:
    # is_refusal skips its phrase search on ASCII text that holds none of the phrases'
    # words; the answer must equal the two patterns' on every text.
    import random

    from llmloop.testing.corpus import long_completions
    from llmloop_processor.features import _REFUSAL, _REFUSAL_ANYWHERE

    def reference(text: str) -> bool:
        return bool(_REFUSAL.search(text[:200]) or _REFUSAL_ANYWHERE.search(text[:2000]))

    rng = random.Random(8)
    words = str.split(
        "I i I'M i'm am AM unable Unable to help assist provide comply can can't cannot "
        "CANNOT against Against my the guidelines policy policies sorry, won't as an ai "
        "must decline unfortunately, \u0130 \u0131 sure here is"
    )
    texts = [a for pair in long_completions("cooking", 60, 9) for a in pair]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(4000)]
    texts += ["x" * 1995 + " i can't help", "x" * 2001 + " I cannot assist"]  # the 2,000 limit
    phrases = [
        "I can't help", "i cannot assist", "I'm unable to provide", "i am unable to comply",
        "against my guidelines", "against the policies", "AGAINST THE POLICY",
    ]  # fmt: skip
    texts += [f"Well, {p}{end}" for p in phrases for end in ("", ".", " with that", "s")]
    answers = [is_refusal(t) for t in texts]
    assert answers == [reference(t) for t in texts]
    assert 300 < sum(answers) < len(texts) - 300
    assert not is_refusal("You can't go wrong with butter.")


def test_pii_kinds_are_flagged_without_values() -> None:
    assert pii_flags("mail me at jane.doe@example.com or call +1 415-555-0100") == [
        "email",
        "phone",
    ]
    assert "ssn" in pii_flags("my ssn is 123-45-6789")
    assert pii_flags("nothing personal here") == []


def test_price_lookup_by_longest_prefix_and_override() -> None:
    assert price_for("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("unknown", DEFAULT_PRICES) is None
    assert estimate_tokens("abcdefgh") == 2 and estimate_tokens("") == 0


def test_rows_without_embeddings() -> None:
    events = [
        CompletionLogged(
            model="gpt-4o-mini",
            prompt="She asked how to reach me: bob@example.com",
            completion="I love this, you idiot!",
            prompt_tokens=10,
            completion_tokens=5,
            attributes={"plan": "pro"},
        ),
        CompletionLogged(model="house-model", prompt="hi", completion="Sorry, I can't do that."),
        CompletionLogged(model="m", prompt="x", completion="y", cost_usd=0.5),
    ]
    enricher = Enricher(None, {**DEFAULT_PRICES, "house-model": (1.0, 2.0)})
    table = enricher.table(events)
    rows = table.to_pylist()
    first, second, third = rows
    assert first["tokens_estimated"] is False
    assert abs(first["cost_usd"] - (10 * 0.15 + 5 * 0.60) / 1e6) < 1e-12
    assert first["cost_source"] == "price_table" and first["pii"] == ["email"]
    assert first["demographics"] == ["gender:female"]
    assert first["completion_toxicity"] > 0.5 and first["toxic"]
    assert first["completion_sentiment"] != 0
    assert second["refusal"] and second["tokens_estimated"]
    assert second["cost_usd"] == (1 * 1.0 + 6 * 2.0) / 1e6
    assert third["cost_usd"] == 0.5 and third["cost_source"] == "event"
    assert not any(r["embedded"] for r in rows)
    assert {r["embedding_state"] for r in rows} == {"off"}
    assert "prompt_embedding" not in table.column_names  # vectors: the embedding stage's


def test_scalar_rows_record_the_sample_decision_and_never_embed() -> None:
    events = [CompletionLogged(model="m", prompt=f"p{i}", completion="c") for i in range(400)]
    rows = Enricher(Sampler(0.25)).table(events).to_pylist()
    sampled = [r for r in rows if r["embedding_state"] == "sampled"]
    assert 60 < len(sampled) < 140 and all(r["embedding_sample_rate"] == 0.25 for r in rows)
    assert {r["embedding_state"] for r in rows} == {"sampled", "not_sampled"}
    assert rows == Enricher(Sampler(0.25)).table(events).to_pylist()  # redelivery: the same


def test_fast_vader_scores_equal_the_original() -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from llmloop.testing.corpus import long_completions
    from llmloop_processor.sentiment import analyzer

    original, ours = SentimentIntensityAnalyzer(), analyzer()
    texts = [t for pair in long_completions("cooking", 150, 7) for t in pair] + [
        "I do not like this at all, it is never so good",
        "The movie was kind of bad but the end was great!",
        "no good, not bad, without doubt the best; the shit hit the fan",
        "I am at least happy, kiss of death, yeah right, NOT GOOD AT ALL!!! :(",
        "great 😀great, terrible😡 café ☕ kind of nice, sort of sad, no",
        "  Kind of   ",
        "",
        "But but BUT good bad good bad, but fine?? really???? !!!!!",
    ]
    # Word salad over the words VADER's rules look at (negations, boosters, "no", "least",
    # "but", idioms), in random case and punctuation: every rule, in every neighbourhood.
    rng = random.Random(11)
    vocabulary = str.split(
        "good bad great terrible love hate nice sad happy no not never isn't without doubt "
        "least at very so this kind of sort extremely barely but or nor the shit bomb kiss "
        "death yeah right to die for cut mustard hardly really"
    )
    # ...and every word of VADER's idioms and multi-word boosters.
    from vaderSentiment import vaderSentiment as vs

    phrases = [k for k in (*vs.SPECIAL_CASES, *vs.BOOSTER_DICT) if " " in k]
    vocabulary += sorted({w for k in phrases for w in k.split()})
    for _ in range(6000):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(1, 14))]
        words = [w.upper() if rng.random() < 0.15 else w for w in words]
        texts.append(" ".join(w + rng.choice(["", "", ",", "!", "?", "."]) for w in words))
    expected = [original.polarity_scores(t)["compound"] for t in texts]
    assert [ours.compound(t) for t in texts] == expected
    assert len({e for e in expected if e}) > 500  # texts with sentiment, not a wall of zeros


def test_features_in_a_worker_process_equal_those_in_process() -> None:
    events = [
        CompletionLogged(model="m", prompt=f"mail bob@example.com, she asks {i}", completion=c)
        for i, c in enumerate(["I'm sorry, I can't help.", "You idiot!", "Great, here it is."])
    ]
    worker = Enricher(Sampler(0.5), in_child=True)
    try:
        assert worker.table(events).equals(Enricher(Sampler(0.5)).table(events))
    finally:
        worker.close()


def test_a_batchs_repeated_prompts_get_the_features_each_would_get_alone() -> None:
    # text_features computes a prompt's features once per batch: each completion must
    # still get its own prompt's, in its own place, whatever repeats where.
    from llmloop.testing.corpus import long_completions
    from llmloop_processor.bias import demographic_groups
    from llmloop_processor.features import sentiment, text_features

    rng = random.Random(3)
    pool = [q for q, _ in long_completions("cooking", 40, 2)] + [
        "She is an idiot 😀", "", "Ünïcode her", "call 555-123-4567", "my son is a teen",
    ]  # fmt: skip
    prompts = [rng.choice(pool) for _ in range(600)]
    outputs = [f"Roast {i} minutes, you moron" if i % 5 == 0 else f"Sure {i}" for i in range(600)]
    got = text_features(prompts, outputs)
    assert got["prompt_sentiment"] == sentiment(prompts)
    assert got["demographics"] == [demographic_groups(p) for p in prompts]
    assert got["pii"] == [pii_flags(p, o) for p, o in zip(prompts, outputs, strict=True)]
    assert got["refusal"] == [is_refusal(o) for o in outputs]
    alone = [text_features([p], [o]) for p, o in zip(prompts[:60], outputs[:60], strict=True)]
    for column in ("prompt_toxicity", "completion_toxicity", "prompt_sentiment"):
        assert got[column][:60] == pytest.approx([a[column][0] for a in alone], abs=1e-12)
    assert len(set(prompts)) < len(prompts) / 10  # prompts repeat, and in no order
    assert any(got["demographics"]) and len(set(got["prompt_toxicity"])) > 10
