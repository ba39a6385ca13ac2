"""PII and toxicity checks on the chosen side."""

from __future__ import annotations

import pytest

from llmloop_retraining.filters import pii_kinds, toxicity


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to bob@corp.io today", ["email"]),
        ("call +1 415-555-0199 now", ["phone"]),
        ("SSN 123-45-6789", ["ssn"]),
        ("card 4111 1111 1111 1111", ["card"]),  # passes Luhn
        ("order 4111 1111 1111 1112", []),  # fails Luhn: an order number, not a card
        ("DE89 3704 0044 0532 0130 00", ["iban"]),
        ("Version 3.10.4 was released in 2022.", []),
    ],
)
def test_pii_kinds(text, kinds):
    assert pii_kinds(text) == kinds


def test_toxicity_separates_abuse_from_help():
    abusive, helpful = toxicity(["shut up you stupid idiot", "Happy to help with that."])
    assert abusive > 0.8 > helpful
