"""Console tokens: stored hashed, scoped to projects, revocable."""

from __future__ import annotations

import pytest

from llmloop_console.tokens import ConsoleTokens, ensure_local_token, tokens_path


def test_a_token_is_stored_hashed_and_scoped(tmp_path):
    tokens = ConsoleTokens(tmp_path / "console.db")
    token, info = tokens.create(["shop", "support"], note="alice")
    assert token.encode() not in (tmp_path / "console.db").read_bytes()
    scope = tokens.scope_for(token)
    assert scope is not None and scope.token_id == info.token_id
    assert scope.allows("shop") and scope.allows("support") and not scope.allows("other")
    assert scope.visible(["other", "shop"]) == ["shop"]
    assert tokens.scope_for(token + "x") is None
    assert tokens.scope_for("llk_an-ingest-key") is None


def test_a_revoked_token_signs_in_no_more(tmp_path):
    tokens = ConsoleTokens(tmp_path / "console.db")
    token, info = tokens.create(["shop"])
    assert tokens.revoke(info.token_id[:8]).revoked_at is not None
    assert tokens.scope_for(token) is None


def test_projects_are_checked(tmp_path):
    tokens = ConsoleTokens(tmp_path / "console.db")
    with pytest.raises(ValueError, match="at least one project"):
        tokens.create([])
    with pytest.raises(ValueError, match="not a valid project"):
        tokens.create(["Bad Name"])


def test_the_local_token_is_made_once_for_every_project(tmp_path):
    first = ensure_local_token(tmp_path)
    assert ensure_local_token(tmp_path) == first
    assert (tmp_path / "console.token").stat().st_mode & 0o777 == 0o600
    scope = ConsoleTokens(tokens_path(tmp_path)).scope_for(first)
    assert scope is not None and scope.everything
