"""A deploy backend makes an endpoint serve a version, and answers requests to it."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError, DeploySuperseded

if TYPE_CHECKING:
    from modelci.registry.base import Shadow

# Asked while a deploy waits: the version that replaced the deploy's own in the pointer ("" when
# the pointer was cleared), or None while the pointer still names it.
Superseded = Callable[[], str | None]


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
    """Where endpoints run: this machine, Ray Serve, SageMaker, hosts following the registry."""

    # True when `apply` returns only once the version's smoke request passed (a host sends it
    # before routing to the version), so a deploy sends none of its own.
    smoke_tested = False
    # True when the backend can route a share of an endpoint's requests to a candidate version
    # beside the serving one (`rollout_state`, modelci.serve.split): canary and linear rollouts
    weighted = False
    # True when the backend runs canary and linear rollouts itself, from `[deploy.rollout]`
    # (SageMaker's blue/green update): `apply` is all a deploy does
    native_rollout = False

    @abc.abstractmethod
    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        """Make the backend follow the registry for `endpoint` (whose pointer now names
        `version`) and wait until it serves that version healthily. Raises DeployFailed; raises
        DeploySuperseded as soon as `superseded` names another version while it waits (a
        backend that cannot stop half-way, SageMaker, waits its change out)."""

    @abc.abstractmethod
    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        """Send one request to the endpoint. Raises ConfigError when it does not exist."""

    def describe(self, endpoint: str) -> dict[str, object] | None:
        """What the backend says of the endpoint now (version, health, status), or None when
        it has nothing to say (a backend that keeps no state of its own answers None)."""
        return None

    def rollout_state(self, endpoint: str, follow: bool = False) -> list[dict[str, Any]]:
        """Each host's view of the endpoint's gradual rollout (`Split.describe` of
        modelci.serve.traffic, with `host` and `url`): the candidate, whether it is ready, the
        step and share it routes and the step's counters. `follow`: have the hosts read the
        registry first, where the backend can. A backend that is not `weighted` has none."""
        return []

    def await_shadow(self, endpoint: str, shadow: Shadow | None, timeout: float) -> str | None:
        """Make the backend follow the registry for `endpoint`'s shadow, just started,
        replaced or ended (`shadow` None), and wait until it mirrors to it (or no longer
        does); where the candidate runs, when the backend says. Raises DeployFailed. The
        default: the backend has no shadow traffic (ConfigError)."""
        raise ConfigError(f"this deploy backend has no shadow traffic (endpoint {endpoint})")

    def prepare(
        self, endpoint: str, model: str, environment: str, version: str | None, commit: str | None
    ) -> bool:
        """Start a spare of `version` (of `model`, made from `commit`) for `endpoint` ahead of
        its deploy, unrouted, where the backend can (`run` asks as the version's training
        starts); None: stop it (the version failed). Only ever an acceleration: whether the
        backend took it, never an error. The default: versions start only when deployed."""
        return False

    def remove(self, endpoint: str, timeout: float) -> None:
        """Make the backend follow the registry for `endpoint`, whose pointer was just cleared,
        and wait until it no longer serves it. The default does nothing: for a backend that
        keeps no endpoint of its own there is nothing to stop. Raises DeployFailed."""
        return None


def stop_if_superseded(superseded: Superseded | None, endpoint: str, version: str) -> None:
    """Raise DeploySuperseded when `superseded` says the pointer names another version now."""
    by = superseded() if superseded is not None else None
    if by is not None:
        raise superseded_error(endpoint, version, by or None, f"waited for {version} to serve")


def superseded_error(endpoint: str, version: str, by: str | None, when: str) -> DeploySuperseded:
    """The one message of a deploy whose version another deploy replaced (`by`, None when it
    cleared the pointer) while this one `when` ("waited for ... to serve", ...)."""
    return DeploySuperseded(
        f"{endpoint}: {version} was superseded by {by or 'no version (undeployed)'}: another "
        f"deploy moved the pointer while this one {when}",
        by=by,
    )
