"""The join of feedback to completions: pairs from each source, filters, dedup, restarts."""

from __future__ import annotations

from retraining_helpers import completion, correction, preference, thumbs

from llmloop_retraining.join import PairJoin


def test_preference_feedback_makes_a_pair_of_the_two_completions(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    a, b = completion("What is 2+2?", "4"), completion("What is 2+2?", "five")
    result = join.apply([a, b, preference(a, b)])
    [pair] = result.pairs
    assert (pair.prompt, pair.chosen, pair.rejected, pair.source) == (
        "What is 2+2?",
        "4",
        "five",
        "preference",
    )
    assert str(a.event_id) in pair.source_event_ids


def test_correction_is_chosen_over_the_original(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    c = completion("Capital of France?", "Lyon")
    [pair] = join.apply([c, correction(c, "Paris")]).pairs
    assert (pair.chosen, pair.rejected, pair.source) == ("Paris", "Lyon", "correction")


def test_thumbs_up_and_down_on_the_same_normalised_prompt_pair_up(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    good, bad = completion("Say hi", "Hello there!"), completion("  say   HI ", "no.")
    other_model = completion("Say hi", "yo", model="m2")
    result = join.apply([good, bad, other_model, thumbs(bad, -1), thumbs(other_model, 1)])
    assert result.pairs == []  # different model: no pair
    [pair] = join.apply([thumbs(good, 1)]).pairs
    assert (pair.chosen, pair.rejected, pair.source, pair.model) == (
        "Hello there!",
        "no.",
        "thumbs",
        "m1",
    )


def test_thumbs_on_different_prompts_do_not_pair_without_embeddings(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    a, b = completion("Say hi", "Hello"), completion("Explain DNS", "no")
    assert join.apply([a, b, thumbs(a, 1), thumbs(b, -1)]).pairs == []


def test_near_duplicate_prompts_pair_by_the_processors_prompt_embeddings(tmp_path):
    from dataclasses import replace

    from llmloop_retraining.pairs import Completion, unit_vector

    join = PairJoin(tmp_path / "state.db", near_duplicate_cosine=0.9, near_duplicates=True)
    a = completion("How do I reset my password", "Go to settings, then Security.")
    b = completion("How can I reset my password?", "I can't help.")
    c = completion("Explain DNS", "dunno")
    d = completion("How may I reset my password", "Ask someone.")  # not embedded: exact only
    # The stored Int8 codes, as the lookup reads them; d has none (outside the sample).
    codes = [(a, [127, 0]), (b, [122, 36]), (c, [0, 127]), (d, None)]
    named = [
        replace(
            Completion.from_event(e),
            toxicity=0.0,
            prompt_vector=None if v is None else unit_vector(v),
        )
        for e, v in codes
    ]
    result = join.apply([thumbs(b, -1), thumbs(c, -1), thumbs(d, -1), thumbs(a, 1)], named)
    [pair] = result.pairs  # c is too far (cosine 0), d has no embedding
    assert (pair.chosen, pair.rejected) == ("Go to settings, then Security.", "I can't help.")


def test_the_chosen_answer_is_filtered_on_the_processors_toxicity_not_rescored(tmp_path):
    # A clean answer the processor scored toxic is dropped; an abusive one it scored
    # clean is kept: the score is the processor's, read with the completion.
    from dataclasses import replace

    from llmloop_retraining.pairs import Completion

    join = PairJoin(tmp_path / "state.db")
    events = [completion(f"q{i}", text) for i, text in enumerate(["Happy to help.", "idiot"])]
    rivals = [completion(e.prompt, "meh") for e in events]
    named = [replace(Completion.from_event(e), toxicity=0.95) for e in events[:1]]
    named += [replace(Completion.from_event(e), toxicity=0.0) for e in events[1:] + rivals]
    result = join.apply([preference(e, r) for e, r in zip(events, rivals, strict=True)], named)
    assert [p.chosen for p in result.pairs] == ["idiot"]
    assert dict(result.drops) == {"toxic_chosen": 1}


def test_filters_drop_toxic_pii_and_empty_chosen_sides_and_count_why(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    c1, c2, c3, c4 = (completion(f"q{i}", "original") for i in range(4))
    result = join.apply(
        [
            c1,
            c2,
            c3,
            c4,
            correction(c1, "you are a fucking idiot"),
            correction(c2, "mail me at jane.doe@example.com"),
            correction(c3, "   "),
            correction(c4, "A clean, helpful answer."),
        ]
    )
    assert [p.chosen for p in result.pairs] == ["A clean, helpful answer."]
    assert dict(result.drops) == {"toxic_chosen": 1, "pii_chosen": 1, "empty_chosen": 1}
    assert join.drops("m1") == {"toxic_chosen": 1, "pii_chosen": 1, "empty_chosen": 1}


def test_duplicate_pairs_and_redelivered_events_count_once(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    a, b = completion("q", "good"), completion("q", "bad")
    pref = preference(a, b)
    batch = [a, b, pref, thumbs(a, 1), thumbs(b, -1)]  # thumbs make the same pair again
    first = join.apply(batch)
    assert len(first.pairs) == 1 and first.drops["duplicate"] == 1
    again = join.apply(batch)  # a redelivered batch
    assert again.pairs == [] and again.skipped == len(batch)
    assert len(join.pairs("m1")) == 1


def test_feedback_before_its_completion_waits_for_it(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    c = completion("q", "wrong")
    assert join.apply([correction(c, "right")]).pairs == []
    [pair] = join.apply([c]).pairs
    assert (pair.chosen, pair.rejected) == ("right", "wrong")


def test_completions_given_without_their_events_join_like_events(tmp_path):
    # Replicated retraining: the controller gets a feedback with the completions it names
    # (read from the store), or the completions later, for feedback that waits.
    from llmloop_retraining.pairs import Completion

    join = PairJoin(tmp_path / "state.db")
    a, b = completion("q", "good answer"), completion("q", "bad answer")
    ca, cb = Completion.from_event(a), Completion.from_event(b)
    assert join.apply([preference(a, b)], [ca]).pairs == []  # b is not known yet
    assert join.waiting_for() == [cb.id]
    [pair] = join.apply([], [cb]).pairs
    assert (pair.chosen, pair.rejected) == ("good answer", "bad answer")
    assert join.waiting_for() == []


def test_every_waiting_completion_is_looked_up_again_in_turns(tmp_path):
    join = PairJoin(tmp_path / "state.db")
    waiting = [completion("q", f"answer {i}") for i in range(25)]
    join.apply([correction(c, "right") for c in waiting])
    turns = [join.waiting_for(10) for _ in range(4)]
    assert [len(t) for t in turns] == [10, 10, 5, 10]  # then from the start again
    assert set().union(*turns[:3]) == {str(c.event_id) for c in waiting}
    assert turns[3] == turns[0]


def test_a_restart_between_completion_and_feedback_still_yields_the_pair(tmp_path):
    path = tmp_path / "state.db"
    first = PairJoin(path)
    good, bad = completion("q", "good answer"), completion("q", "bad answer")
    first.apply([good, bad, thumbs(bad, -1)])
    first.close()  # the service stops; its state is the file

    second = PairJoin(path)
    [pair] = second.apply([thumbs(good, 1)]).pairs
    assert (pair.chosen, pair.rejected) == ("good answer", "bad answer")
    assert [p.pair_id for _, p in second.pairs("m1")] == [pair.pair_id]


def test_one_batch_or_one_event_per_batch_make_the_same_pairs(tmp_path):
    # The batch reads seen ids and parked feedback once and writes completions at its end:
    # feedback before or after its completion in the same batch, a repeat inside the batch
    # and an id reused by another project must come out as they do event by event.
    import random

    from retraining_helpers import new_id

    rng = random.Random(3)
    events = []
    for i in range(60):
        good, bad = completion(f"q{i % 7}", f"good {i}"), completion(f"q{i % 7}", f"bad {i}")
        other = completion("q", f"another project {i}", project="p2")
        other = other.model_copy(update={"event_id": good.event_id})  # same id, other project
        feedback = [preference(good, bad), correction(bad, f"fixed {i}"), thumbs(good, 1),
                    thumbs(bad, -1)]  # fmt: skip
        chosen = rng.sample(feedback, rng.randint(1, 4))
        events += [good, bad, other, *chosen, chosen[0]]  # one event twice
    rng.shuffle(events)  # feedback lands before its completion about half the time
    stray = completion("q", "never rated")
    events.append(stray.model_copy(update={"event_id": new_id()}))

    whole = PairJoin(tmp_path / "whole.db")
    one_by_one = PairJoin(tmp_path / "single.db")
    batched = whole.apply(events)
    single = [p for e in events for p in one_by_one.apply([e]).pairs]
    assert len(batched.pairs) > 60
    assert sorted(p.pair_id for p in batched.pairs) == sorted(p.pair_id for p in single)
    assert whole.drops("m1") == one_by_one.drops("m1")
    assert whole.apply(events).skipped == len(events)  # redelivered: nothing new
