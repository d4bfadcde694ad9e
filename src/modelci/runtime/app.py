"""The ASGI application serving one model version: SageMaker's container routes and more.

`GET /ping`, `POST /invocations`, `GET /metadata`, `GET /metrics` and `GET /openapi.json`. The
request path is kept short on purpose: no access log, no middleware of our own, metric children
looked up once, predict called on the event loop (batched when the handler allows).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from modelci.runtime.batching import Batcher
from modelci.runtime.bodies import read_body
from modelci.runtime.errors import ServeError
from modelci.runtime.handlers import Handler, load_handler
from modelci.runtime.limits import MAX_BODY_BYTES
from modelci.runtime.metrics import Metrics
from modelci.runtime.openapi import openapi_document

DEFAULT_MAX_BODY_BYTES = MAX_BODY_BYTES
CONFIG_VARIABLE = "MODELCI_SERVE_CONFIG"
JSON = "application/json"
METADATA_KEYS = ("model", "version", "commit", "environment")
log = logging.getLogger("modelci.serve")


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def error_response(error: ServeError) -> Response:
    """A JSON `{"error": message}` answer with the error's status."""
    return Response(_json({"error": error.message}), status_code=error.status, media_type=JSON)


class InferenceService:
    """The routes' state: handler, batcher, metrics, and the fixed metadata and OpenAPI bodies."""

    def __init__(
        self,
        handler: Handler,
        *,
        metadata: dict[str, Any] | None = None,
        batch_max_size: int = 64,
        batch_max_wait_ms: float = 2.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        metrics: Metrics | None = None,
    ):
        self.handler = handler
        self.metrics = Metrics() if metrics is None else metrics
        self.max_body_bytes = max_body_bytes
        self.batcher = Batcher(
            handler.predict,
            max_size=batch_max_size,
            max_wait_ms=batch_max_wait_ms,
            observe=self.metrics.batch_size.observe,
        )
        document = dict.fromkeys(METADATA_KEYS) | dict(metadata or {})
        document["handler"] = handler.name
        document["loaded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        signature = handler.signature
        document["signature"] = None if signature is None else signature.to_dict()
        self.metadata = document
        self._metadata_body = _json(document)
        title = f"{document['model'] or 'model'} inference"
        self._openapi_body = _json(
            openapi_document(title, str(document["version"] or "0"), signature)
        )

    async def invocations(self, request: Request) -> Response:
        """POST /invocations: decode, predict (batched when possible), encode."""
        start = perf_counter()
        self.metrics.in_flight.inc()
        try:
            response = await self._invoke(request)
        finally:
            self.metrics.in_flight.dec()
        self.metrics.observe("/invocations", response.status_code, perf_counter() - start)
        return response

    async def _invoke(self, request: Request) -> Response:
        handler = self.handler
        headers = request.headers
        try:
            accept = handler.accept_type(headers.get("accept"))
            self.batcher.arrive()
            try:
                body = await read_body(request, self.max_body_bytes)
                data = handler.decode(body, headers.get("content-type"))
            finally:
                self.batcher.arrived()
            if handler.batchable and isinstance(data, np.ndarray) and data.ndim >= 2:
                prediction = await self.batcher.submit(data)
            else:
                prediction = handler.predict(data)
            answer, content_type = handler.encode(prediction, accept)
        except ServeError as error:
            return error_response(error)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody is left to read it
        except Exception as error:  # a bug of ours; still no traceback for the client
            log.exception("unexpected error answering /invocations")
            return error_response(ServeError(f"internal error: {type(error).__name__}: {error}"))
        return Response(answer, media_type=content_type)

    async def ping(self, request: Request) -> Response:
        """GET /ping: 200 once the model is loaded (it is loaded before the app exists)."""
        self.metrics.observe("/ping", 200, 0.0)
        return Response(b'{"status":"healthy"}', media_type=JSON)

    async def get_metadata(self, request: Request) -> Response:
        """GET /metadata: which model version this is and when it was loaded."""
        self.metrics.observe("/metadata", 200, 0.0)
        return Response(self._metadata_body, media_type=JSON)

    async def get_metrics(self, request: Request) -> Response:
        """GET /metrics: Prometheus text format."""
        self.metrics.observe("/metrics", 200, 0.0)
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    async def openapi(self, request: Request) -> Response:
        """GET /openapi.json."""
        return Response(self._openapi_body, media_type=JSON)

    def routes(self) -> list[Route]:
        """The app's routes, /invocations first (Starlette matches in order)."""
        return [
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/metadata", self.get_metadata, methods=["GET"]),
            Route("/metrics", self.get_metrics, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"], include_in_schema=False),
        ]


def create_app(
    model_dir: str | Path,
    *,
    handler_path: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    batch_max_size: int = 64,
    batch_max_wait_ms: float = 2.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The ASGI app serving the model in `model_dir`, its model loaded before this returns.

    `handler_path` is a user `inference.py` (default: the built-in handler for the model file,
    or `code/inference.py` in the folder); `metadata` fills `GET /metadata` (model, version,
    commit, environment). The service object is at `app.state.service`.
    """
    handler = load_handler(model_dir, handler_path)
    service = InferenceService(
        handler,
        metadata=metadata,
        batch_max_size=batch_max_size,
        batch_max_wait_ms=batch_max_wait_ms,
        max_body_bytes=max_body_bytes,
    )
    app = Starlette(routes=service.routes())
    app.state.service = service
    return app


def app_from_environment() -> Starlette:
    """`create_app` with the keyword arguments in `MODELCI_SERVE_CONFIG` (JSON).

    The factory uvicorn's worker processes call; `python -m modelci.runtime.server` sets the
    variable.
    """
    _die_with_parent()
    config = json.loads(os.environ[CONFIG_VARIABLE])
    model_dir = config.pop("model_dir")
    return create_app(model_dir, **config)


def _die_with_parent() -> None:
    """A worker must not outlive its server process, which dies with the endpoint host (even
    of SIGKILL): ask Linux to send SIGKILL to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
