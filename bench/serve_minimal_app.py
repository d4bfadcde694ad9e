"""The floor for bench/serve_bench.py: Starlette on uvicorn calling `predict` inline.

One route that parses `{"inputs": rows}`, predicts on a NumPy array and answers JSON; no metrics,
no content negotiation, no batching, no error handling. Run by serve_bench.py as
`python bench/serve_minimal_app.py --model PATH --port PORT --workers N`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import joblib
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

try:  # the same parser uvicorn's "auto" (and modelci's server) picks when it is installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

MODEL_VARIABLE = "MINIMAL_APP_MODEL"
# Loaded when uvicorn imports this module by name (in each worker), not when run as __main__.
model = joblib.load(os.environ[MODEL_VARIABLE]) if MODEL_VARIABLE in os.environ else None


async def invocations(request: Request) -> Response:
    """POST /invocations: `{"inputs": rows}` -> `{"predictions": [...]}`."""
    rows = np.asarray(json.loads(await request.body())["inputs"], dtype=np.float64)
    predictions = model.predict(rows).tolist()  # type: ignore[union-attr]
    return Response(json.dumps({"predictions": predictions}), media_type="application/json")


async def ping(request: Request) -> Response:
    """GET /ping."""
    return Response(b"{}", media_type="application/json")


class NoDelayProtocol(_Protocol):
    """TCP_NODELAY on each connection: uvicorn's worker processes otherwise leave Nagle on
    (their listening socket has proto 0), which costs ~40 ms per answer on one connection."""

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[MODEL_VARIABLE] = str(Path(args.model).resolve())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    uvicorn.run(
        "serve_minimal_app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        http=NoDelayProtocol,
    )
