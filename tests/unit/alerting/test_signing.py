"""The signing helper apps import from the base install: sign, verify, reject what is wrong."""

from __future__ import annotations

import pytest

from llmloop.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidSignature,
    sign,
    verify_signature,
)

BODY = b'{"status":"firing"}'


def test_a_signed_body_verifies_and_returns_its_timestamp():
    headers = sign("s3cret", BODY, timestamp=1_700_000_000)
    assert verify_signature("s3cret", BODY, headers, now=1_700_000_010) == 1_700_000_000


def test_header_names_are_case_insensitive():
    headers = {k.lower(): v for k, v in sign("s3cret", BODY, timestamp=100).items()}
    assert verify_signature("s3cret", BODY, headers, now=100) == 100


@pytest.mark.parametrize(
    ("secret", "body", "now", "message"),
    [
        ("wrong", BODY, 100, "does not match"),
        ("s3cret", BODY + b" ", 100, "does not match"),
        ("s3cret", BODY, 100 + 301, "stale or replayed"),
    ],
)
def test_a_wrong_secret_a_changed_body_or_an_old_timestamp_is_rejected(secret, body, now, message):
    headers = sign("s3cret", BODY, timestamp=100)
    with pytest.raises(InvalidSignature, match=message):
        verify_signature(secret, body, headers, now=now)


def test_missing_or_malformed_headers_say_what_is_wrong():
    with pytest.raises(InvalidSignature, match="missing"):
        verify_signature("s", BODY, {})
    with pytest.raises(InvalidSignature, match="not Unix seconds"):
        verify_signature("s", BODY, {TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "v1=ab"})
    with pytest.raises(InvalidSignature, match="no v1= entry"):
        verify_signature("s", BODY, {TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "v0=ab"}, now=1)


def test_rotation_signs_with_both_secrets_and_either_verifies():
    headers = sign(["old", "new"], BODY, timestamp=5)
    assert headers[SIGNATURE_HEADER].count("v1=") == 2
    assert verify_signature("old", BODY, headers, now=5) == 5
    assert verify_signature(["new"], BODY, headers, now=5) == 5
    with pytest.raises(ValueError, match="empty"):
        sign("", BODY)
