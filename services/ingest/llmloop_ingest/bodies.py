"""Reading request bodies within limits, and the JSON answers every route shares."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect


class BodyError(Exception):
    """A body the client must fix: ``status`` (400, 413, 415) and a message saying how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    """The body, inflated when gzip'd; never buffers or inflates more than ``limit`` bytes."""
    too_large = BodyError(413, f"body is larger than {limit} bytes; send smaller batches")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        # A client that hangs up mid-body (or lied in Content-Length) is a client
        # error: without this it was a traceback and a 500 in the request metrics.
        raise BodyError(400, "the client closed the connection before the body ended") from None
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        body = gunzip(body, limit)
    elif encoding not in ("identity", ""):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    if len(body) > limit:
        raise too_large
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate at most ``limit + 1`` bytes, so a gzip bomb costs nothing."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid gzip: {exc}") from None
    if not inflater.eof and len(out) <= limit:
        raise BodyError(400, "body is not valid gzip: the stream is truncated")
    return out


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer: ``{"error": message}``."""
    return json_response({"error": message}, status, headers)
