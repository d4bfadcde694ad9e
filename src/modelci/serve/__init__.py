"""Serving one model version: an ASGI app on SageMaker's container routes.

Everything in this package runs inside the model's own environment, which holds the model's
requirements plus Starlette, uvicorn, prometheus_client and NumPy: it imports nothing else from
modelci. `create_app` builds the app in process; `load_handler` answers request bodies in
process without HTTP (golden tests use it); `python -m modelci.serve` runs the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelci.serve.app import create_app
    from modelci.serve.handlers import Handler, load_handler

__all__ = ["Handler", "create_app", "load_handler"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `load_handler` does not need Starlette and vice versa.
    if name == "create_app":
        from modelci.serve.app import create_app

        return create_app
    if name in ("Handler", "load_handler"):
        from modelci.serve import handlers

        return getattr(handlers, name)
    raise AttributeError(f"module 'modelci.serve' has no attribute {name!r}")
