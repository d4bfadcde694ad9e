"""The Ray Serve rollout's router (`modelci.runtime.ray_split`) in one process: real Starlette
apps stand for the serving and the candidate versions; only Serve's deployment handle is a
stand-in (`fake_handle`), calling the candidate's app as the candidate's replica would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelci.deploy.ray_rollout import rollout_of, with_rollout
from modelci.runtime.ray_app import DEPLOYMENT
from modelci.runtime.ray_split import Splitter, call_app

ROLLOUT = {
    "candidate": "toy-new",
    "previous": "toy-old",
    "generation": 3,
    "step": 7,
    "percent": 20,
    "application": "toy-staging--candidate",
    "deployment": DEPLOYMENT,
}


def version_app(version: str, fail_every: int = 0) -> Starlette:
    """An app answering its version, and a 500 every `fail_every`th invocation."""
    calls = [0]

    async def invocations(request: Request) -> JSONResponse:
        await request.body()
        calls[0] += 1
        if fail_every and calls[0] % fail_every == 0:
            return JSONResponse({"error": "every third fails"}, status_code=500)
        return JSONResponse({"version": version})

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"version": version})

    return Starlette(
        routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)]
    )


class FakeMethod:
    def __init__(self, call: Callable[..., Awaitable[Any]]):
        self.call = call

    def remote(self, *arguments: Any) -> Awaitable[Any]:
        return self.call(*arguments)


def fake_handle(app: Starlette | None) -> Any:
    """A handle whose `forward` runs `app` in process (None: a candidate that is gone)."""

    async def forward(*arguments: Any) -> Any:
        if app is None:
            raise RuntimeError("the candidate's replica died")
        return await call_app(app, *arguments)

    handle = type("FakeHandle", (), {})()
    handle.forward = FakeMethod(forward)
    return handle


def request(splitter: Splitter, method: str, path: str) -> tuple[int, dict[str, Any]]:
    status, _, body = asyncio.run(call_app(splitter, method, path, b"", [], b"[[1, 2]]"))
    return status, json.loads(body)


def test_the_serving_replica_routes_exactly_the_share_and_counts_the_candidates_answers() -> None:
    connected: list[tuple[str, str]] = []
    candidate = version_app("toy-new", fail_every=3)

    def connect(deployment: str, application: str) -> Any:
        connected.append((deployment, application))
        return fake_handle(candidate)

    splitter = Splitter(connect)
    splitter.app = version_app("toy-old")
    splitter.configure(ROLLOUT)
    assert connected == [(DEPLOYMENT, "toy-staging--candidate")]

    async def hundred() -> list[tuple[int, bytes]]:
        answers = []
        for _ in range(100):
            status, _, body = await call_app(splitter, "POST", "/invocations", b"", [], b"[[1]]")
            answers.append((status, body))
        return answers

    answers = asyncio.run(hundred())
    new = [a for a in answers if a[0] != 200 or json.loads(a[1])["version"] == "toy-new"]
    assert len(new) == 20  # exactly the share, by count
    assert sum(1 for status, _ in answers if status == 500) == 6  # every third of the 20
    # only invocations are routed: the serving version answers everything else
    assert request(splitter, "GET", "/ping") == (200, {"version": "toy-old"})

    status, window = request(splitter, "GET", "/-/rollout")
    assert status == 200 and window["replica"] == splitter.replica
    rollout = window["rollout"]
    assert (rollout["candidate"], rollout["previous"], rollout["generation"]) == (
        "toy-new",
        "toy-old",
        3,
    )
    assert (rollout["step"], rollout["percent"], rollout["requests"]) == (7, 20, 20)
    assert (rollout["errors"], rollout["model_errors"]) == (6, 6)
    assert rollout["p99_ms"] is not None and rollout["first_error"] is not None

    # the same step again keeps its window; a new step starts a new one on the same handle
    splitter.configure(dict(ROLLOUT))
    assert request(splitter, "GET", "/-/rollout")[1]["rollout"]["requests"] == 20
    splitter.configure(ROLLOUT | {"step": 8, "percent": 50})
    after = request(splitter, "GET", "/-/rollout")[1]["rollout"]
    assert (after["step"], after["percent"], after["requests"]) == (8, 50, 0)
    assert len(connected) == 1

    # no rollout: everything to the serving version, and no window
    splitter.configure(None)
    versions = {request(splitter, "POST", "/invocations")[1]["version"] for _ in range(10)}
    assert versions == {"toy-old"}
    assert request(splitter, "GET", "/-/rollout")[1] == {
        "replica": splitter.replica,
        "rollout": None,
    }


def test_a_candidate_that_does_not_answer_is_counted_as_an_error_not_a_model_error() -> None:
    splitter = Splitter(lambda deployment, application: fake_handle(None))
    splitter.app = version_app("toy-old")
    splitter.configure(ROLLOUT | {"percent": 100})
    status, answer = request(splitter, "POST", "/invocations")
    assert status == 502 and "did not answer" in answer["error"]
    rollout = request(splitter, "GET", "/-/rollout")[1]["rollout"]
    assert (rollout["requests"], rollout["errors"], rollout["model_errors"]) == (1, 1, 0)


def test_a_rollout_changes_only_the_serving_deployments_user_config() -> None:
    config = {
        "name": "toy-staging",
        "import_path": "modelci.runtime.ray_app:build",
        "args": {"model_dir": "model"},
        "deployments": [{"name": DEPLOYMENT, "user_config": {"version": "toy-old"}}],
    }
    routed = with_rollout(config, ROLLOUT)
    assert rollout_of({"deployed_app_config": routed}) == ROLLOUT
    assert routed["deployments"][0]["user_config"] == {"version": "toy-old", "rollout": ROLLOUT}
    assert {k: v for k, v in routed.items() if k != "deployments"} == {
        k: v for k, v in config.items() if k != "deployments"
    }
    assert config["deployments"][0]["user_config"] == {"version": "toy-old"}  # a copy
    back = with_rollout(routed, None)
    assert back == config and rollout_of({"deployed_app_config": back}) is None
