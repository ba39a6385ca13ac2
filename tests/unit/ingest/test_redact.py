"""PII redaction: what is replaced, what is left alone, and the count ingest reports."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from ingest_helpers import client_for, published

from llmloop import pii
from llmloop.events import parse_event
from llmloop.pii import luhn_ok, redact_text
from llmloop.testing.server import completion
from llmloop_ingest.app import create_app
from llmloop_ingest.settings import IngestSettings


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail jane.doe+x@example.co.uk today", "mail [EMAIL] today", "email"),
        ("call +1 (415) 555-0132 now", "call [PHONE] now", "phone"),
        ("call 030 1234567", "call [PHONE]", "phone"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok", "card"),
        ("card 4111-1111-1111-1111", "card [CARD]", "card"),
        ("from 192.168.1.20.", "from [IP].", "ip"),
        ("from 2001:db8::1 too", "from [IP] too", "ip"),
    ],
)
def test_pii_is_replaced_and_counted(text, expected, kind):
    counts: Counter[str] = Counter()
    assert redact_text(text, counts) == expected
    assert counts == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "on 2024-01-15 at 10:30:22",
        "order 12345 costs 4.50",
        "300.1.2.3 is no address",
        "ab:cd:ef and 12:30:45",
    ],
)
def test_look_alikes_are_left_alone(text):
    counts: Counter[str] = Counter()
    assert redact_text(text, counts) == text
    assert not counts


def _hard_texts(rng: random.Random) -> list[str]:
    """Realistic answers with PII and look-alikes in them, glued into words at random
    places, and random strings of the characters the detectors' windows are made of."""
    from llmloop.testing.corpus import long_completions

    pieces = [
        "bob@example.com", "DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111",
        "078-05-1120", "10.0.0.1", "fe80::1ff:fe23:4567:890a", "abcd::ef", "+44 20 7946 0958",
        "030 1234567", "2024-01-15", "12:30:45", "v1.2.3", "4.50", "٣٤٥٦٧٨٩٠١٢٣٤٥",
    ]  # fmt: skip
    texts = [a for pair in long_completions("programming", 60, 4) for a in pair]
    texts = [t if rng.random() < 0.3 else f"{t} {rng.choice(pieces)} {rng.choice(pieces)}"
             for t in texts] + pieces  # fmt: skip
    # Pieces glued into words and punctuation at random places, and random strings of the
    # characters the windows are made of (their edges are where a gate could go wrong).
    for t in list(texts[:80]):
        at = rng.randrange(len(t) + 1)
        texts.append(
            t[:at] + rng.choice(pieces) + rng.choice(["", " ", ".", "a", "Z", "-"]) + t[at:]
        )
    alphabet = "AZQX0123456789 .()+-:@abf"
    texts += [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(5, 60))) for _ in range(3000)
    ]
    return texts


def test_the_cheap_gates_never_change_what_is_replaced():
    # Each pattern is skipped on texts that fail a necessary condition (digit count, an
    # @, two colons); the result must equal every pattern run on every text.
    def ungated(text: str, counts: Counter[str]) -> str:
        for kind, pattern, accept, *_ in pii._DETECTORS:
            text = pattern.sub(pii._replacer(kind, accept, counts), text)
        return text

    texts = _hard_texts(random.Random(5))
    for text in texts:
        got, want = Counter[str](), Counter[str]()
        assert redact_text(text, got) == ungated(text, want), text
        assert got == want
    assert sum(bool(pii.kinds(t)) for t in texts) > 200


def test_a_prompt_and_its_answer_searched_as_one_have_the_kinds_of_each():
    # The processor flags a completion's PII in one pass over prompt and answer joined
    # (pii.kinds(a, b)): a match across the join, or a boundary check that sees the other
    # text, would flag what neither holds or miss what one does.
    rng = random.Random(11)
    texts = _hard_texts(rng)
    edges = [
        "4111 1111", "1111 1111", "192.168", ".1.20", "bob@", "example.com", "+44 20",
        "7946 0958", "fe80::", ":1", "078-05", "-1120", "DE89 3704", "0044 0532 0130 00",
    ]  # fmt: skip
    texts += edges
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(4000)]
    pairs += [(a, b) for a in edges for b in edges]  # halves of one value on either side
    for a, b in pairs:
        assert pii.kinds(a, b) == sorted(set(pii.kinds(a)) | set(pii.kinds(b))), (a, b)
    assert sum(len(pii.kinds(a, b)) > 1 for a, b in pairs) > 100


def test_luhn():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


async def test_only_projects_that_ask_are_redacted_with_a_count(bus, keys, tmp_path):
    app = create_app(IngestSettings(data_dir=tmp_path, redact_pii="shop"), bus=bus)
    chat = [{"role": "user", "content": "I am bob@example.com, card 4111111111111111"}]
    feedback = {
        "type": "feedback",
        "kind": "correction",
        "event_id": "0b7e6a2c-4d0f-4c39-9a8e-2f1f7f0c9d11",
        "completion_id": "0b7e6a2c-4d0f-4c39-9a8e-2f1f7f0c9d12",
        "correction": "Call me on +44 20 7946 0958",
    }
    async with client_for(app, keys["shop"]) as client:
        response = await client.post(
            "/v1/events",
            json={"events": [completion(prompt=chat, completion="Hi 10.0.0.1"), feedback]},
        )
        assert response.json()["redacted"] == {"email": 1, "card": 1, "ip": 1, "phone": 1}
        assert (
            'llmloop_ingest_redactions_total{kind="card"} 1.0'
            in (await client.get("/metrics")).text
        )
    async with client_for(app, keys["bank"]) as client:
        response = await client.post("/v1/events", json={"events": [completion(prompt="a@b.io")]})
        assert "redacted" not in response.json()
    shop_c, shop_f, bank_c = [parse_event(m.value) for m in await published(bus)]
    assert shop_c.prompt[0].content == "I am [EMAIL], card [CARD]"
    assert shop_c.completion == "Hi [IP]"
    assert shop_c.metadata["llmloop_redacted"] == {"email": 1, "card": 1, "ip": 1}
    assert shop_f.correction == "Call me on [PHONE]"
    assert bank_c.prompt == "a@b.io"
