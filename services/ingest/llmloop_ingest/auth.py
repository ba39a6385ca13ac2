"""Who is calling: the project an event belongs to comes from here, never from the body."""

from __future__ import annotations

import time
from typing import Protocol

from starlette.requests import HTTPConnection

from llmloop_ingest.keys import KeyFile, KeyStore, hash_key
from llmloop_ingest.settings import IngestSettings


class Authenticator(Protocol):
    async def project_for(self, request: HTTPConnection) -> str | None:
        """The caller's project, or None when the request is not authenticated."""
        ...


class KeyLookup(Protocol):
    def project_for_hash(self, digest: str) -> str | None: ...


class SingleProject:
    """Every request belongs to one project: ``auth=none``, a closed laptop."""

    def __init__(self, project_id: str = "default") -> None:
        self.project_id = project_id

    async def project_for(self, request: HTTPConnection) -> str | None:
        return self.project_id


def presented_key(request: HTTPConnection) -> str | None:
    """The key in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() or None if scheme.lower() == "bearer" else None
    return request.headers.get("x-api-key") or None


class ApiKeys:
    """Keys checked against a ``KeyStore`` or ``KeyFile``, with a short cache.

    The cache keeps the hot path free of I/O; its TTL bounds how long a revoked
    key keeps working. Misses are cached too, so a flood of bad keys costs one
    lookup per key and TTL.
    """

    def __init__(self, lookup: KeyLookup, cache_s: float = 5.0, max_cached: int = 10_000) -> None:
        self.lookup = lookup
        self.cache_s = cache_s
        self.max_cached = max_cached
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def project_for(self, request: HTTPConnection) -> str | None:
        key = presented_key(request)
        if key is None or len(key) > 200:
            return None
        digest = hash_key(key)  # the cache never holds a key in plaintext
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        project = self.lookup.project_for_hash(digest)
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        self._cache[digest] = (project, now + self.cache_s)
        return project


def authenticator_from(settings: IngestSettings) -> Authenticator:
    """The authenticator ``settings`` ask for: keys (file or SQLite), or none."""
    if settings.auth == "none":
        return SingleProject()
    lookup: KeyLookup = (
        KeyFile(settings.keys_file) if settings.keys_file else KeyStore(settings.keys_path())
    )
    return ApiKeys(lookup, settings.key_cache_s)
