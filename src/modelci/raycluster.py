"""The Ray cluster that `[train]`/`[deploy] backend = "ray"` use, as modelci reaches it.

modelci never joins the cluster (no `ray.init`): it talks to the head's dashboard over HTTP,
through Ray's Job API and Serve's REST API, so that the machine running modelci (a CI runner)
needs neither a Ray node of its own nor a route to every node. This module turns the `[ray]`
settings into the dashboard's URL, checks that the cluster answers, and reads its nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modelci.errors import ConfigError
from modelci.loader import require
from modelci.spec import RaySection

DASHBOARD_PORT = 8265
CHECK_TIMEOUT_S = 10.0
_RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


class RayUnreachable(ConfigError):
    """The cluster's dashboard did not answer: a setting is wrong or the cluster is down."""


@dataclass(frozen=True)
class RayCluster:
    """Where the cluster is: its address as configured and its dashboard's URL."""

    address: str
    dashboard_url: str

    @classmethod
    def from_settings(cls, settings: RaySection) -> RayCluster:
        """The cluster `[ray]` names; a missing address is a ConfigError naming the key, as is
        a missing `ray` package (naming the extra), before anything is recorded."""
        require("ray", what="the Ray backend")
        if settings.dashboard_url:
            url = settings.dashboard_url.rstrip("/")
            return cls(settings.address or url, url)
        address = settings.address
        if not address:
            raise ConfigError(
                "the Ray backend needs the cluster's address: set [ray].address (host:port of "
                "its head) or MODELCI_RAY_ADDRESS",
                file="modelci.toml",
                key="ray.address",
            )
        if address.startswith(("http://", "https://")):
            return cls(address, address.rstrip("/"))
        host = address.removeprefix("ray://").rsplit(":", 1)[0] or "127.0.0.1"
        return cls(address, f"http://{host}:{DASHBOARD_PORT}")

    def describe(self) -> str:
        """`the Ray cluster at ADDRESS (dashboard URL)`, for messages."""
        if self.address == self.dashboard_url:
            return f"the Ray cluster at {self.address}"
        return f"the Ray cluster at {self.address} (dashboard {self.dashboard_url})"

    def get(self, path: str, timeout: float = CHECK_TIMEOUT_S) -> Any:
        """GET a JSON document from the dashboard; RayUnreachable when it does not answer."""
        import httpx

        try:
            answer = httpx.get(self.dashboard_url + path, timeout=timeout)
            answer.raise_for_status()
            return answer.json()
        except (httpx.HTTPError, ValueError) as error:
            raise RayUnreachable(
                f"{self.describe()} does not answer ({type(error).__name__}: {error}); check "
                "[ray].address (MODELCI_RAY_ADDRESS) and [ray].dashboard_url, and that the "
                "cluster runs",
                file="modelci.toml",
                key="ray.address",
            ) from None

    def check(self) -> str:
        """Raise RayUnreachable unless the dashboard answers; the cluster's Ray version."""
        document = self.get("/api/version")
        return str(document.get("ray_version", "?"))

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's live nodes: `node_ip`, `is_head_node`, `resources_total`."""
        document = self.get("/api/v0/nodes?detail=1&limit=10000")
        nodes = document.get("data", {}).get("result", {}).get("result", [])
        return [n for n in nodes if n.get("state") == "ALIVE"]


def quiet_ray_sdk() -> None:
    """Keep Ray's SDK from logging each upload and closed log stream on modelci's stderr."""
    import logging

    for name in (
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.runtime_env.packaging",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def resources_problem(asked: dict[str, float], nodes: list[dict[str, Any]]) -> str | None:
    """Why no node of the cluster could ever run a job asking `asked` (a job's driver runs on
    one node), or None when one could."""
    wanted = {_RESOURCE_NAMES[k]: v for k, v in asked.items() if k in _RESOURCE_NAMES and v}
    if not wanted:
        return None
    for node in nodes:
        total = node.get("resources_total") or {}
        if all(float(total.get(name, 0)) >= amount for name, amount in wanted.items()):
            return None
    asked_text = ", ".join(f"{k} = {_amount(k, v)}" for k, v in asked.items() if v)
    have = (
        "; ".join(
            f"{n.get('node_ip', '?')}{' (head)' if n.get('is_head_node') else ''}: "
            + ", ".join(
                f"{key} = {_amount(key, float((n.get('resources_total') or {}).get(name, 0)))}"
                for key, name in _RESOURCE_NAMES.items()
            )
            for n in nodes
        )
        or "no live node"
    )
    return f"the job asks for {asked_text}, more than any node has ({have})"


def _amount(key: str, value: float) -> str:
    if key == "memory":
        return f"{value / 2**30:.1f} GiB"
    return f"{value:g}" if not math.isinf(value) else "inf"
