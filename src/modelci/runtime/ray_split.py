"""A gradual rollout on Ray Serve, inside the replicas of the version that serves: while the
endpoint's application config (written by `modelci.deploy.ray_rollout`) carries a `rollout`
in its deployment's `user_config`, each replica of the serving version routes exactly the
step's share of the `POST /invocations` requests it receives (`takes_candidate`, by count) to
the candidate's deployment, another Serve application, through a deployment handle, and
counts the candidate's answers in the step's window (`Window`). `GET /-/rollout` answers the
replica's window, which the deploy reads to judge its alarms. A new `user_config` reaches the
replicas in place (Serve's `reconfigure`, no restart), so a step, or the return of all
traffic to the old version, takes effect without starting anything.

Runs on the cluster, in the model's runtime environment: the standard library and Ray only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from modelci.runtime.rollout_window import Window, takes_candidate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

WINDOW_PATH = "/-/rollout"
ROUTED_PATH = "/invocations"
JSON_HEADERS = [(b"content-type", b"application/json")]


def route_path(scope: Scope) -> str:
    """The request's path below the application's route prefix (Serve keeps it as root_path)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


async def call_app(
    app: ASGIApp, method: str, path: str, query: bytes, headers: list[Any], body: bytes
) -> Answer:
    """One HTTP request through an ASGI app in this process: (status, headers, body)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(bytes(k), bytes(v)) for k, v in headers],
        "client": None,
        "server": None,
    }
    delivered = False
    status = 500
    answer_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            answer_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, headers: list[Any], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def deployment_handle(deployment: str, application: str) -> Any:
    """A Serve handle to a deployment of another application (not checked: it may be starting)."""
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=application, _check_exists=False)


class Splitter:
    """The ASGI app of a replica of the serving version: its own app, and while a rollout is
    configured the candidate's share of the invocations routed away and counted."""

    def __init__(self, connect: Callable[[str, str], Any] = deployment_handle) -> None:
        self.connect = connect
        self.app: ASGIApp | None = None
        self.replica = uuid.uuid4().hex[:12]
        self.rollout: dict[str, Any] | None = None
        self.window = Window(0, 0)
        self.sent = 0  # invocations of this step so far, the candidate's or not
        self.handle: Any = None

    def configure(self, rollout: dict[str, Any] | None) -> None:
        """The rollout in the deployment's user_config (None: no rollout, all to this
        version). A new step starts a new window; a new candidate application a new handle."""
        if rollout is None:
            self.rollout, self.handle = None, None
            return
        before = self.rollout or {}
        if before.get("application") != rollout.get("application") or self.handle is None:
            self.handle = self.connect(str(rollout["deployment"]), str(rollout["application"]))
        same = (before.get("generation"), before.get("step")) == (
            rollout.get("generation"),
            rollout.get("step"),
        )
        if not same:
            self.window, self.sent = Window(int(rollout["step"]), int(rollout["percent"])), 0
        self.rollout = rollout

    def describe(self) -> dict[str, Any]:
        """What `GET /-/rollout` answers: this replica and its window."""
        rollout = self.rollout
        if rollout is None:
            return {"replica": self.replica, "rollout": None}
        keys = ("candidate", "previous", "generation")
        return {
            "replica": self.replica,
            "rollout": {**{k: rollout.get(k) for k in keys}, **self.window.to_json()},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path == WINDOW_PATH:
            await _respond(send, 200, JSON_HEADERS, json.dumps(self.describe()).encode())
            return
        handle = self.handle
        if (
            handle is None
            or path != ROUTED_PATH
            or scope.get("method") != "POST"
            or not self.window.percent
        ):
            await self.app(scope, receive, send)
            return
        self.sent += 1
        if not takes_candidate(self.sent, self.window.percent):
            await self.app(scope, receive, send)
            return
        window = self.window
        body = await _read_body(receive)
        started = time.perf_counter()
        try:
            status, headers, answer = await handle.forward.remote(
                "POST", path, scope.get("query_string", b""), list(scope.get("headers", [])), body
            )
        except Exception as error:  # not delivered: the candidate's replica is gone, or failed
            window.count(None, time.perf_counter() - started)
            message = {"error": f"the candidate did not answer: {type(error).__name__}"}
            await _respond(send, 502, JSON_HEADERS, json.dumps(message).encode())
            return
        window.count(status, time.perf_counter() - started)
        await _respond(send, status, headers, answer)
