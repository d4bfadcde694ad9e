"""Errors the inference server answers with, each carrying its HTTP status.

```
ServeError                 500 unless a subclass says otherwise
├── BadRequest             400 the body does not parse
├── PayloadTooLarge        413 the body is above the limit
├── UnsupportedMediaType   415 no decoder for the Content-Type
├── NotAcceptable          406 no encoder for the Accept header
├── HandlerError           500 the handler (model_fn, predict_fn, output_fn...) raised
└── HandlerNotFound        no handler fits the model folder (raised at start, not per request)
```

The runtime runs inside a model's own environment, so it has its own small error tree instead
of `modelci.errors` (which needs nothing heavy, but keeping `modelci.runtime` closed over the
standard library, Starlette, uvicorn, prometheus_client and NumPy is the simpler rule).
"""

from __future__ import annotations


class ServeError(Exception):
    """Base of every error the server turns into an HTTP answer."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ServeError):
    """The body does not parse as the declared content type."""

    status = 400


class PayloadTooLarge(ServeError):
    """The body is longer than the server's limit."""

    status = 413


class UnsupportedMediaType(ServeError):
    """No decoder for the request's Content-Type."""

    status = 415


class NotAcceptable(ServeError):
    """None of the types in the Accept header can be produced."""

    status = 406


class HandlerError(ServeError):
    """User or model code raised while answering a request."""

    status = 500


class HandlerNotFound(ServeError):
    """No handler fits the model folder: no `inference.py` with `model_fn`, no known model file."""
