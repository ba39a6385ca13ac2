"""Who is calling: the project an event belongs to comes from here, never from the body."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request


class Authenticator(Protocol):
    async def project_for(self, request: Request) -> str | None:
        """The caller's project, or None when the request is not authenticated."""
        ...


class SingleProject:
    """Every request belongs to one project: local, single-user runs."""

    def __init__(self, project_id: str = "default") -> None:
        self.project_id = project_id

    async def project_for(self, request: Request) -> str | None:
        return self.project_id
