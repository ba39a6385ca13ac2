"""A fake Kubernetes API server: the few REST endpoints the launcher's client calls.

A real HTTP server on a loopback port (the official client talks to it exactly
as to a cluster); the pod's phases follow a script, one step per pod listing.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeKube:
    def __init__(self, pod_script: list[dict[str, Any]]) -> None:
        self.pod_script = pod_script
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._step = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body["metadata"]["name"]
                if name in fake.jobs:
                    self._send(409, {"kind": "Status", "reason": "AlreadyExists", "code": 409})
                    return
                fake.jobs[name] = body
                self._send(201, body)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if m := re.match(
                    r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)/status", self.path
                ):
                    job = fake.jobs[m.group(2)]
                    phase = fake.current()["phase"]
                    status = {"succeeded": 1} if phase == "Succeeded" else {"active": 1}
                    self._send(200, {**job, "status": status})
                elif m := re.match(r"^/api/v1/namespaces/([^/]+)/pods", self.path):
                    state = fake.advance()
                    pod = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "dpo-pod-1", "namespace": m.group(1)},
                        "spec": {
                            "containers": [{"name": "dpo", "image": "x"}],
                            "nodeName": "gpu-node-1",
                        },
                        "status": state,
                    }
                    self._send(
                        200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]}
                    )
                else:
                    self._send(404, {"kind": "Status", "code": 404})

            def do_DELETE(self) -> None:
                fake.requests.append(("DELETE", self.path))
                fake.deleted.append(self.path.rsplit("/", 1)[-1].split("?")[0])
                self._send(200, {"kind": "Status", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def current(self) -> dict[str, Any]:
        return self.pod_script[min(self._step, len(self.pod_script) - 1)]

    def advance(self) -> dict[str, Any]:
        state = self.current()
        self._step += 1
        return state

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)
