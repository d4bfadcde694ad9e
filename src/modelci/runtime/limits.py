"""The limits every server of modelci holds a client to, version servers and the endpoint host
alike: one place for each number.

The read timeouts can be changed for a process through `MODELCI_SERVE_HEADER_TIMEOUT_S` and
`MODELCI_SERVE_BODY_TIMEOUT_S` (seconds), read when a connection is made.
"""

from __future__ import annotations

import os

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's limit for real-time endpoints
# Rows are at most three deep ({"instances": [[...]]}); far deeper JSON is an attack on the
# parser's recursion, refused before it is parsed.
MAX_JSON_DEPTH = 32
HEADER_TIMEOUT_S = 10.0  # from a request's first byte (or the connection) to its last header
BODY_TIMEOUT_S = 60.0  # from the end of the headers to the body's last byte
HEADER_TIMEOUT_VARIABLE = "MODELCI_SERVE_HEADER_TIMEOUT_S"
BODY_TIMEOUT_VARIABLE = "MODELCI_SERVE_BODY_TIMEOUT_S"


def _seconds(variable: str, default: float) -> float:
    try:
        value = float(os.environ.get(variable, default))
    except ValueError:
        return default
    return value if value > 0 else default


def read_timeouts() -> tuple[float, float]:
    """(header, body) read timeouts in seconds, the environment's where it sets them."""
    return (
        _seconds(HEADER_TIMEOUT_VARIABLE, HEADER_TIMEOUT_S),
        _seconds(BODY_TIMEOUT_VARIABLE, BODY_TIMEOUT_S),
    )
