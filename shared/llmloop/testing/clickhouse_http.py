"""A TEST HARNESS: the embedded ClickHouse engine (chDB) behind the ClickHouse HTTP interface.

No ClickHouse server installs on the machines llmloop's tests run on, so the
``clickhouse://`` adapter (clickhouse-connect over HTTP) would otherwise be tested only
where ``LLMLOOP_CLICKHOUSE_URL`` names a server. This serves a chDB data dir over the
subset of the HTTP protocol that clickhouse-connect speaks, so that adapter's tests, and
several processes writing one store, run for real: the real client library, real HTTP,
the real engine parsing and executing every statement and producing every output format.

It is not a production store and is never offered as one: no auth beyond a password
check, no TLS, no sessions (each request gets a fresh engine handle, so ``SET`` does not
outlive its request), no progress headers, no query cancellation, one data dir.

Usage::

    with ChdbHttpServer(tmp_path / "ch") as server:     # a child process, free port
        store = open_store(server.url)                   # clickhouse://127.0.0.1:PORT

What it implements, after ClickHouse's ``HTTPHandler``:

* ``GET /ping`` -> ``Ok.``; ``GET|POST /?query=...``; the query in the body when the URL
  has none; for ``INSERT ... FORMAT F`` with the query in the URL, the body is the data;
* ``param_NAME`` (server-side binding, values in ClickHouse's text form, passed to the
  engine as they are), ``database``, ``default_format``, any other URL key as a setting
  (``SET`` on that request's handle), the transport keys clickhouse-connect sends
  (``session_id``, ``compress``, ``wait_end_of_query``, ...) accepted and ignored;
* request bodies with ``Content-Encoding`` gzip, deflate, zstd, lz4 (frame) or br, and
  chunked transfer; responses uncompressed (allowed: no ``Content-Encoding`` header);
* ``X-ClickHouse-Summary`` / ``-Query-Id`` / ``-Format`` / ``-Timezone`` /
  ``-Server-Display-Name`` headers; errors as HTTP 500 with the engine's
  ``Code: N. DB::Exception: ...`` text and ``X-ClickHouse-Exception-Code``.

Run on its own: ``python -m llmloop.testing.clickhouse_http DATA_DIR [--port N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

# URL keys that are the HTTP transport's, not engine settings (after ClickHouse's
# HTTPHandler and clickhouse-connect's CHDB_TRANSPORT_SETTINGS).
TRANSPORT_KEYS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "buffer_size",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "quota_key",
        "compress",
        "decompress",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT_FORMAT = re.compile(
    r"^(?P<head>\s*INSERT\s.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.I | re.S
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
READY_LINE = "llmloop-clickhouse-http listening on "


class HarnessError(RuntimeError):
    """The harness did not come up."""


class _Engine:
    """One chDB engine (one data dir per process); a fresh handle per request."""

    def __init__(self, path: Path, password: str) -> None:
        import chdb

        path.mkdir(parents=True, exist_ok=True)
        self._chdb = chdb
        self.path = str(path)
        self.password = password
        self._root = chdb.connect(self.path)  # keeps the engine up between requests
        self.version = str(self._root.query("SELECT version()", "TSV").bytes().decode().strip())
        self.timezone = str(self._root.query("SELECT timezone()", "TSV").bytes().decode().strip())

    def run(
        self, sql: str, data: bytes | None, url: Mapping[str, str]
    ) -> tuple[bytes, str, dict[str, int]]:
        """Run one request's statement; (output, its format, summary counts)."""
        conn = self._chdb.connect(self.path)
        try:
            if url.get("database"):
                conn.query(f"USE `{url['database'].replace('`', '')}`")
            for key, value in url.items():
                if key in TRANSPORT_KEYS or key.startswith("param_"):
                    continue
                if not _SETTING_NAME.match(key):
                    raise ValueError(f"Code: 115. DB::Exception: Unknown setting {key!r}")
                conn.query(f"SET {key} = '{_sql_string(value)}'")
            params = {k[len("param_") :]: v for k, v in url.items() if k.startswith("param_")}
            insert = _INSERT_FORMAT.match(sql) if data is not None else None
            if insert:
                with conn.send_insert(insert["head"], insert["fmt"]) as inserter:
                    inserter.append(data)
                    written = int(inserter.finish().rows_written)
                return b"", insert["fmt"], {"written_rows": written, "read_rows": 0}
            if data:  # the query is in the URL and the body continues it (HTTPHandler)
                sql = sql + "\n" + data.decode()
            fmt = url.get("default_format") or "TabSeparated"
            trailing = _TRAILING_FORMAT.search(sql)
            result = conn.query(sql, trailing[1] if trailing else fmt, params=params or None)
            body = result.bytes() if hasattr(result, "bytes") else bytes(result)
            summary = {"read_rows": int(_call(result, "rows_read")), "written_rows": 0}
            return body or b"", trailing[1] if trailing else fmt, summary
        finally:
            conn.close()


def _form_fields(content_type: str, body: bytes) -> dict[str, str] | None:
    """The fields of a multipart/form-data or urlencoded body; None for any other body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    if kind != "multipart/form-data":
        return None
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def _call(result: Any, name: str) -> Any:
    attr = getattr(result, name, None)
    return attr() if callable(attr) else (attr or 0)


def _sql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _decode(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(body))
    raise ValueError(f"Code: 36. DB::Exception: Unknown Content-Encoding {encoding!r}")


class _Handler(BaseHTTPRequestHandler):
    engine: _Engine
    lock: threading.Lock
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("LLMLOOP_CH_HTTP_LOG"):
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return _decode(body, self.headers.get("Content-Encoding", ""))

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/ping" or (self.command == "GET" and not parts.query):
            return self._reply(200, b"Ok.\n", {})
        query_id = str(uuid.uuid4())
        try:
            body = self._read_body()
            url = dict(parse_qsl(parts.query, keep_blank_values=True))
            if not self._authorised(url):
                raise PermissionError(
                    "Code: 516. DB::Exception: default: Authentication failed: password is "
                    "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)"
                )
            form = _form_fields(self.headers.get("Content-Type", ""), body)
            if form is not None:
                # clickhouse-connect sends long parameter lists (and the query) as a
                # multipart form in the body, as ClickHouse's HTTPHandler accepts.
                url.update({k: v for k, v in form.items() if k != "query"})
                sql, data = form.get("query", url.get("query", "")), None
            elif "query" in url:
                sql, data = url["query"], body
            else:
                sql, data = body.decode(), None
            with self.lock:
                out, fmt, summary = self.engine.run(sql, data, url)
        except Exception as exc:
            text = str(exc).strip() or type(exc).__name__
            code = _ERROR_CODE.search(text)
            status = 401 if isinstance(exc, PermissionError) else 500
            headers = {"X-ClickHouse-Exception-Code": code[1] if code else "1002"}
            return self._reply(status, (text + "\n").encode(), headers, query_id)
        headers = {
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in summary.items()}),
            "Content-Type": "text/plain; charset=UTF-8"
            if fmt.startswith(("TabSeparated", "TSV", "CSV"))
            else "application/octet-stream",
        }
        self._reply(200, out, headers, query_id)

    def _authorised(self, url: Mapping[str, str]) -> bool:
        if not self.engine.password:
            return True
        import base64

        given = url.get("password") or self.headers.get("X-ClickHouse-Key", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            given = base64.b64decode(auth[6:]).decode().partition(":")[2]
        return given == self.engine.password

    def _reply(
        self, status: int, body: bytes, headers: Mapping[str, str], query_id: str = ""
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-ClickHouse-Server-Display-Name", "llmloop-chdb-http-harness")
        self.send_header("X-ClickHouse-Timezone", self.engine.timezone)
        if query_id:
            self.send_header("X-ClickHouse-Query-Id", query_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def serve(path: Path, host: str = "127.0.0.1", port: int = 0, password: str = "") -> None:
    """Serve ``path`` until killed; prints ``READY_LINE`` + the port once listening."""
    engine = _Engine(path, password)
    handler = type("Handler", (_Handler,), {"engine": engine, "lock": threading.Lock()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    print(f"{READY_LINE}{server.server_address[1]} (ClickHouse {engine.version})", flush=True)
    server.serve_forever()


class ChdbHttpServer:
    """The harness as a child process on a free loopback port (it owns the chDB data dir,
    so the test process and other processes may all write it over HTTP)."""

    def __init__(
        self,
        path: Path,
        *,
        password: str = "",
        timezone: str | None = None,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.path, self.password, self.timezone = Path(path), password, timezone
        self.ready_timeout_s = ready_timeout_s
        self.host = "127.0.0.1"
        self.port = 0
        self.version = ""
        self._popen: subprocess.Popen[str] | None = None
        self._log_dir = Path(tempfile.mkdtemp(prefix="llmloop-ch-http-"))
        self._finalizer = weakref.finalize(self, _cleanup, self._log_dir, [None])

    @property
    def url(self) -> str:
        """A ``clickhouse://`` store URL for this harness."""
        auth = f"default:{quote(self.password, safe='')}@" if self.password else ""
        return f"clickhouse://{auth}{self.host}:{self.port}"

    def start(self) -> ChdbHttpServer:
        env = dict(os.environ)
        if self.timezone:
            env["TZ"] = self.timezone
        if self.password:
            env["LLMLOOP_CH_HTTP_PASSWORD"] = self.password
        log = (self._log_dir / "server.log").open("w")
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "llmloop.testing.clickhouse_http", str(self.path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self._log_dir, [self._popen])
        deadline = time.monotonic() + self.ready_timeout_s
        assert self._popen.stdout is not None
        line = ""
        while time.monotonic() < deadline and self._popen.poll() is None:
            line = self._popen.stdout.readline()
            if line.startswith(READY_LINE):
                break
        if not line.startswith(READY_LINE):
            self.stop()
            said = (self._log_dir / "server.log").read_text()[-2000:]
            raise HarnessError(f"the chDB HTTP harness did not come up: {said}")
        port, _, version = line[len(READY_LINE) :].partition(" ")
        self.port = int(port)
        self.version = version.strip("()\n ").removeprefix("ClickHouse ")
        return self

    def stop(self) -> None:
        proc, self._popen = self._popen, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def __enter__(self) -> ChdbHttpServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)


def _cleanup(log_dir: Path, procs: list[subprocess.Popen[str] | None]) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(log_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.data_dir, args.host, args.port, os.environ.get("LLMLOOP_CH_HTTP_PASSWORD", ""))


if __name__ == "__main__":
    main()
