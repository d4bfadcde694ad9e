"""What the endpoint host checks of a request's path before it forwards anything: endpoint names
as SageMaker spells them, an action that is one plain path segment, and no control character
anywhere (a CR/LF decoded from %0d%0a would otherwise split the head the host writes to the
version server)."""

from __future__ import annotations

import re

# SageMaker's endpoint names, matched whole (`$` would let a trailing newline through)
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
ACTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def refused_path(path: str, endpoint: str, action: str) -> str | None:
    """Why the host refuses to forward this request (400), or None."""
    if not ENDPOINT_NAME.fullmatch(endpoint):
        return f"{endpoint!r} is not a valid endpoint name"
    if CONTROL.search(path):
        return f"the path {path!r} holds control characters"
    if not ACTION.fullmatch(action):
        return f"{action!r} is not a route of an endpoint"
    return None
