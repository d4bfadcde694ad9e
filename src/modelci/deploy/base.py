"""A deploy backend makes an endpoint serve a version, and answers requests to it."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class Served:
    """An endpoint serving a version: its own server's URL and the gateway's."""

    endpoint: str
    version: str
    url: str | None
    gateway_url: str | None


@dataclass(frozen=True)
class Answer:
    """An endpoint's answer to one request."""

    status: int
    body: bytes
    content_type: str | None


class Deployer(abc.ABC):
    """Where endpoints run: this machine, Ray Serve, SageMaker."""

    @abc.abstractmethod
    def apply(self, endpoint: str, version: str, timeout: float) -> Served:
        """Make the backend follow the registry for `endpoint` (whose pointer now names
        `version`) and wait until it serves that version healthily. Raises DeployFailed."""

    @abc.abstractmethod
    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        """Send one request to the endpoint. Raises ConfigError when it does not exist."""

    def describe(self, endpoint: str) -> dict[str, object] | None:
        """What the backend says of the endpoint now (version, health, status), or None when
        it has nothing to say (a backend that keeps no state of its own answers None)."""
        return None

    def remove(self, endpoint: str, timeout: float) -> None:
        """Make the backend follow the registry for `endpoint`, whose pointer was just cleared,
        and wait until it no longer serves it. The default does nothing: for a backend that
        keeps no endpoint of its own there is nothing to stop. Raises DeployFailed."""
        return None
