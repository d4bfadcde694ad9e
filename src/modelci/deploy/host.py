"""Endpoints on long-lived `modelci serve` hosts that follow the registry (no checkout there):
a deploy starts nothing; the pointer it moved is what the hosts follow, and it waits until one
of them reports, through the registry, that it serves the version healthily and the version's
smoke request passed (`modelci.serve.reports`), or that it could not."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from modelci.deploy.base import Answer, Deployer, Served, Superseded, stop_if_superseded
from modelci.errors import ConfigError, DeployFailed
from modelci.serve.reports import FAILED, KIND, SERVING

if TYPE_CHECKING:
    from modelci.registry.base import Event, Registry, Shadow
    from modelci.workspace import Workspace

POLL_S = 0.2
REPORTS_READ = 200  # the newest reports of a model looked at, per poll


class HostDeployer(Deployer):
    """Waits on the registry for the hosts' reports; sends requests to a reporting host."""

    smoke_tested = True  # the host sends the smoke request before routing to the version
    weighted = True  # hosts route a rollout's share to its candidate and report its traffic

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        wait = float(self.workspace.project.deploy.timeout)
        deadline = time.monotonic() + wait
        with self.workspace.registry() as registry:
            model, environment = self._locate(registry, endpoint)
            pointer = registry.get_pointer(model, environment)
            generation = pointer.generation if pointer else 0
            while True:
                for report in self._reports(registry, model, environment, endpoint):
                    if report.version != version or report.details["generation"] < generation:
                        continue
                    host, status = report.details["host"], report.details["status"]
                    if status == SERVING:
                        url = f"{report.details['url']}/endpoints/{endpoint}"
                        return Served(endpoint, version, url, url)
                    if status == FAILED:
                        raise DeployFailed(
                            f"{endpoint}: host {host} could not serve {version}: "
                            f"{report.details.get('reason')}"
                        )
                stop_if_superseded(superseded, endpoint, version)
                if time.monotonic() > deadline:
                    raise DeployFailed(
                        f"{endpoint}: no host reported serving {version} within {wait:g} s "
                        "([deploy].timeout): is a `modelci serve` host following this "
                        "registry (MODELCI_REGISTRY_URL, MODELCI_STORE_URL)?"
                    )
                time.sleep(POLL_S)

    def await_shadow(self, endpoint: str, shadow: Shadow | None, timeout: float) -> str | None:
        """Wait until a host following the registry reports mirroring to the shadow (its
        URL), or that it could not; an ended shadow is not waited for (each host stops its
        candidate at its next look)."""
        if shadow is None:
            return None
        from modelci.shadow.pairs import REPORT_KIND

        wait = float(self.workspace.project.deploy.timeout)
        deadline = time.monotonic() + wait
        with self.workspace.registry() as registry:
            while True:
                for report in registry.events(
                    shadow.model, kind=REPORT_KIND, environment=shadow.environment, limit=50
                ):
                    if report.details.get("shadow") != shadow.event:
                        continue
                    if report.details.get("status") == SERVING:
                        return f"{report.details.get('url')}/endpoints/{endpoint}"
                    raise DeployFailed(
                        f"{endpoint}: host {report.details.get('host')} could not start the "
                        f"shadow {shadow.version}: {report.details.get('reason')}"
                    )
                if time.monotonic() > deadline:
                    raise DeployFailed(
                        f"{endpoint}: no host reported mirroring to {shadow.version} within "
                        f"{wait:g} s ([deploy].timeout)"
                    )
                time.sleep(POLL_S)

    def _locate(self, registry: Registry, endpoint: str) -> tuple[str, str]:
        """The model and environment whose endpoint this is (longest suffix first)."""
        environments = self.workspace.project.environments
        for name, section in sorted(environments.items(), key=lambda e: -len(e[1].suffix)):
            suffix = section.suffix
            model = endpoint[: len(endpoint) - len(suffix)] if suffix else endpoint
            if endpoint.endswith(suffix) and model and registry.get_pointer(model, name):
                return model, name
        raise ConfigError(f"no environment's pointer names endpoint {endpoint!r}")

    @staticmethod
    def _reports(registry: Registry, model: str, environment: str, endpoint: str) -> list[Event]:
        """The hosts' reports of the endpoint, newest first."""
        return [
            event
            for event in registry.events(model, kind=KIND, limit=REPORTS_READ)
            if event.environment == environment and event.details.get("endpoint") == endpoint
        ]

    def rollout_state(self, endpoint: str, follow: bool = False) -> list[dict[str, Any]]:
        """Each host's newest `rollout_traffic` report of the endpoint (hosts read the
        registry every few seconds by themselves: `follow` changes nothing)."""
        from modelci.serve.split import TRAFFIC

        with self.workspace.registry() as registry:
            try:
                model, environment = self._locate(registry, endpoint)
            except ConfigError:
                return []
            found: dict[str, dict[str, Any]] = {}
            for event in registry.events(model, kind=TRAFFIC, limit=REPORTS_READ):
                details = event.details
                if event.environment == environment and details.get("endpoint") == endpoint:
                    found.setdefault(str(details.get("host")), details)
        return list(found.values())

    def hosts(self, endpoint: str) -> dict[str, dict[str, Any]]:
        """Each host's newest report of the endpoint: version, status, reason, time, URL."""
        with self.workspace.registry() as registry:
            try:
                model, environment = self._locate(registry, endpoint)
            except ConfigError:
                return {}
            found: dict[str, dict[str, Any]] = {}
            for report in self._reports(registry, model, environment, endpoint):
                host = str(report.details["host"])
                if host not in found:
                    found[host] = {
                        "version": report.version,
                        "status": report.details["status"],
                        "reason": report.details.get("reason"),
                        "reported_at": report.time.isoformat() if report.time else None,
                        "url": report.details.get("url"),
                    }
        return found

    def describe(self, endpoint: str) -> dict[str, object] | None:
        """The hosts' newest reports (`hosts`), and the newest serving one's version and URL."""
        hosts = self.hosts(endpoint)
        serving = [h for h in hosts.values() if h["status"] == SERVING]
        newest = max(serving, key=lambda h: str(h["reported_at"])) if serving else None
        return {
            "healthy": newest is not None,
            "status": "SERVING" if newest else "FAILED" if hosts else "NOT_SERVING",
            "version": newest["version"] if newest else None,
            "url": f"{newest['url']}/endpoints/{endpoint}" if newest else None,
            "hosts": hosts,
        }

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        from modelci.deploy.local import _request

        urls = [h["url"] for h in self.hosts(endpoint).values() if h["status"] == SERVING]
        if not urls:
            raise ConfigError(f"no host reports serving {endpoint!r}")
        headers = {"content-type": content_type}
        token = os.environ.get("MODELCI_SERVE_TOKEN")
        if token:
            headers["authorization"] = f"Bearer {token}"
        if accept:
            headers["accept"] = accept
        try:
            status, answer, answer_type = _request(
                "POST", f"{urls[0]}/endpoints/{endpoint}/invocations", body, headers, timeout=60
            )
        except OSError as error:
            raise DeployFailed(f"{endpoint}: {error}") from None
        return Answer(status, answer, answer_type)
