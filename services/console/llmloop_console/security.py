"""Sign-in, project scope and cross-site request forgery, for every console request.

* The session cookie holds the console token itself (HttpOnly, SameSite=Strict):
  each request re-checks it against the hashed store, so a revoked token stops
  working at once and the server keeps no session table.
* A state-changing request needs ``X-CSRF-Token`` equal to an HMAC of the
  token's hash under a secret of this process: a page on another origin can make
  the browser send the cookie (same-site includes other ports of 127.0.0.1)
  but can neither read nor forge that header. Its ``Origin``, when the browser
  sends one, must also be this console's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request

from llmloop_console.tokens import ConsoleTokens, Scope, hash_token

COOKIE = "llmloop_console"
CSRF_HEADER = "X-CSRF-Token"


class NotSignedIn(Exception):
    """No valid console token: pages redirect to the sign-in page, the API answers 401."""


@dataclass(frozen=True)
class Viewer:
    scope: Scope
    csrf: str


class Guard:
    """Resolves a request to a ``Viewer`` and checks CSRF on state-changing ones."""

    def __init__(self, tokens: ConsoleTokens) -> None:
        self.tokens = tokens
        self._secret = secrets.token_bytes(32)

    def csrf_for(self, token: str) -> str:
        return hmac.new(self._secret, hash_token(token).encode(), hashlib.sha256).hexdigest()

    def viewer(self, request: Request) -> Viewer:
        token = request.cookies.get(COOKIE, "")
        scope = self.tokens.scope_for(token) if token else None
        if scope is None:
            raise NotSignedIn()
        return Viewer(scope, self.csrf_for(token))

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise HTTPException(403, "cross-site request refused")

    def check_csrf(self, request: Request, viewer: Viewer) -> None:
        self.check_origin(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.console_guard
    return guard


def current_viewer(request: Request) -> Viewer:
    return _guard(request).viewer(request)


def changing_viewer(request: Request) -> Viewer:
    """A viewer whose state-changing request passed the CSRF checks."""
    guard = _guard(request)
    viewer = guard.viewer(request)
    guard.check_csrf(request, viewer)
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
ChangingViewerDep = Annotated[Viewer, Depends(changing_viewer)]
