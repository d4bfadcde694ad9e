"""An endpoint on Ray Serve: one application per endpoint, whose deployment's replicas each
run the same inference server as a local endpoint (`create_app`: the handlers, routes,
batching and metrics), as the ASGI ingress behind Serve's proxy at `/endpoints/<endpoint>`.

The application's config (written by `modelci.deploy.ray`) names `build` as its import path;
its working directory holds the version's `model/` and, with a user handler, `code/`. The
version is the deployment's `user_config`, so that every deploy changes the config and Serve
rolls the replicas over to it. Runs on the cluster, in the model's runtime environment.

During a canary or linear rollout the serving version's `user_config` also carries the
`rollout` (`modelci.runtime.ray_split`): its replicas route the step's share of the requests
to the candidate, whose replicas answer them through `forward`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEPLOYMENT = "InferenceServer"
FORWARD = "forward"  # the method a rollout's router calls on the candidate's replicas


def _absolute(path: str | None) -> str | None:
    """A path of the application's config, relative to the working directory Ray unpacked."""
    if path is None:
        return None
    return path if os.path.isabs(path) else str(Path.cwd() / path)


def build(args: dict[str, Any]) -> Any:
    """The application: Serve calls this with the config's `args` (`model_dir`, `handler`,
    `metadata`, `batch_max_size`, `batch_max_wait_ms`)."""
    from ray import serve

    @serve.deployment(name=DEPLOYMENT)
    @serve.ingress()
    class InferenceServer:
        """One replica: the model loaded once, served by modelci's ASGI app."""

        def __init__(self, settings: dict[str, Any]):
            from modelci.runtime.ray_split import Splitter

            self.settings = settings
            self.version: str | None = None
            self.splitter = Splitter()
            self.served: Any = None

        def __serve_build_asgi_app__(self) -> Any:
            from modelci.runtime.app import create_app

            settings = self.settings
            self.served = self.splitter.app = create_app(
                _absolute(settings["model_dir"]) or "model",
                handler_path=_absolute(settings.get("handler")),
                metadata=settings.get("metadata"),
                batch_max_size=int(settings.get("batch_max_size", 64)),
                batch_max_wait_ms=float(settings.get("batch_max_wait_ms", 2.0)),
            )
            return self.splitter

        def reconfigure(self, user_config: dict[str, Any]) -> None:
            """The version this replica serves and the rollout it routes, from the
            deployment's user_config."""
            self.version = user_config.get("version")
            self.splitter.configure(user_config.get("rollout"))

        async def forward(
            self, method: str, path: str, query: bytes, headers: list[Any], body: bytes
        ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            """A request a rollout's router sent here, answered by this version's own app."""
            from modelci.runtime.ray_split import call_app

            return await call_app(self.served, method, path, query, headers, body)

    return InferenceServer.bind(args)  # type: ignore[attr-defined]
