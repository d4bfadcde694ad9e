"""Canary and linear rollouts on Ray Serve, the backend's half of `modelci.deploy.guardrails`.

The candidate version runs as its own Serve application, `<endpoint>--candidate` at
`/-/candidates/<endpoint>`, built from the same config as any version's application. The
endpoint's own application keeps serving the previous version, unchanged but for its
deployment's `user_config`, which gains a `rollout` (candidate, generation, step, share):
Serve hands it to the running replicas in place (`reconfigure`), and each replica routes the
step's share of its invocations to the candidate by count and counts the candidate's answers
(`modelci.runtime.ray_split`). Nothing is restarted to start a step, nor to end one: all
traffic returns to the old version when the `rollout` leaves the config again.

The deploy follows the registry here as an endpoint host would (`follow`: the pointer's
candidate and the step in force written into the configs), and reads each replica's window
at `/-/rollout` through Serve's proxy (`views`). Once the deploy settles the pointer,
`RayDeployer.apply` rolls the endpoint's application over to the candidate's version, as any
update, and deletes the candidate's application once the old replicas are gone.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError, DeployFailed
from modelci.runtime.ray_app import DEPLOYMENT
from modelci.runtime.ray_split import WINDOW_PATH
from modelci.serve.split import current_step, gradual

if TYPE_CHECKING:
    from modelci.deploy.ray import RayDeployer

READS_PER_REPLICA = 3  # GETs of /-/rollout per replica of the deployment, per look
READ_TIMEOUT_S = 5.0
RETIRE_WAIT_S = 60.0  # for the old replicas to drain before the candidate's app goes


def candidate_name(endpoint: str) -> str:
    """The Serve application of the endpoint's rollout candidate."""
    return f"{endpoint}--candidate"


def rollout_of(application: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `rollout` an application's serving deployment routes, or None."""
    config = (application or {}).get("deployed_app_config") or {}
    for deployment in config.get("deployments", []):
        if deployment.get("name") == DEPLOYMENT:
            rollout: dict[str, Any] | None = (deployment.get("user_config") or {}).get("rollout")
            return rollout
    return None


def with_rollout(config: dict[str, Any], rollout: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of an application config whose serving deployment routes `rollout` (None: no
    rollout). Only the user_config changes, so Serve updates the replicas in place."""
    changed = copy.deepcopy(config)
    for deployment in changed.get("deployments", []):
        if deployment.get("name") == DEPLOYMENT:
            user = dict(deployment.get("user_config") or {})
            user.pop("rollout", None)
            deployment["user_config"] = user | ({"rollout": rollout} if rollout else {})
    return changed


class RayRollouts:
    """The rollouts one deploy process drives on Ray Serve, by endpoint."""

    def __init__(self, deployer: RayDeployer):
        self.deployer = deployer
        self.plans: dict[str, dict[str, Any]] = {}  # endpoint -> the rollout last written
        self.models: dict[str, str] = {}  # endpoint -> its model
        self.replicas: dict[str, int] = {}  # endpoint -> replicas of its serving deployment
        self.checked: dict[tuple[str, int, str], str | None] = {}  # None: ready; else failure
        self.windows: dict[str, dict[str, dict[str, Any]]] = {}  # endpoint -> replica -> window

    # --- following the registry ------------------------------------------------------------

    def follow(self, endpoint: str) -> None:
        """Write what the endpoint's pointer says into Serve's configs: the candidate's
        application, and the step in force into the serving deployment's user_config."""
        deployer = self.deployer
        workspace = deployer.workspace
        with workspace.registry() as registry:
            pointer = next(
                (
                    p
                    for p in registry.pointers()
                    if p.environment in workspace.environments
                    and workspace.endpoint(p.model, p.environment) == endpoint
                ),
                None,
            )
            if pointer is None or pointer.pending is None or not gradual(pointer):
                return
            step, percent = current_step(registry, pointer)
        client = deployer._client()
        applications = deployer._details(client).get("applications") or {}
        serving = applications.get(endpoint)
        if serving is None or not serving.get("deployed_app_config"):
            raise DeployFailed(
                f"{endpoint}: Ray Serve runs no application of {pointer.pending.previous} to "
                "roll out from"
            )
        name = candidate_name(endpoint)
        rollout = {
            "candidate": pointer.version,
            "previous": pointer.pending.previous,
            "generation": pointer.generation,
            "step": step,
            "percent": percent,
            "application": name,
            "deployment": DEPLOYMENT,
        }
        changes: dict[str, dict[str, Any] | None] = {}
        candidate = applications.get(name)
        if _version(candidate) != pointer.version:
            config = deployer.application(client, endpoint, pointer.version)
            changes[name] = config | {"name": name, "route_prefix": f"/-/candidates/{endpoint}"}
        if rollout_of(serving) != rollout:
            changes[endpoint] = with_rollout(serving["deployed_app_config"], rollout)
        if changes:
            deployer._put(client, changes)
        self.plans[endpoint] = rollout
        self.models[endpoint] = pointer.model
        self.replicas[endpoint] = _replicas(serving)

    # --- what the replicas say -------------------------------------------------------------

    def views(self, endpoint: str) -> list[dict[str, Any]]:
        """Each replica's view of the rollout (`rollout_state`): its window, with whether
        the candidate is ready (running, its smoke request passed) or why it failed."""
        plan = self.plans.get(endpoint)
        if plan is None:
            return []
        url = self.deployer.endpoint_url(endpoint)
        failure = self._checked(endpoint, plan)
        if failure:
            keys = ("candidate", "previous", "generation")
            return [{**{k: plan[k] for k in keys}, "ready": False, "failed": failure}]
        return [
            {**window, "ready": failure is None, "failed": None, "host": replica, "url": url}
            for replica, window in self.read(endpoint).items()
        ]

    def read(self, endpoint: str) -> dict[str, dict[str, Any]]:
        """The newest window seen of each replica routing a rollout (replicas that route none
        are left out), read through Serve's proxy, which spreads the reads over them."""
        import httpx

        seen = self.windows.setdefault(endpoint, {})
        replicas = self.replicas.get(endpoint, 1)
        answered: set[str] = set()
        with httpx.Client(timeout=READ_TIMEOUT_S) as client:
            for _ in range(READS_PER_REPLICA * replicas):
                try:
                    document = client.get(self.deployer.endpoint_url(endpoint) + WINDOW_PATH)
                    answer = document.json() if document.status_code == 200 else {}
                except (httpx.HTTPError, ValueError):
                    continue
                replica = answer.get("replica")
                if not isinstance(replica, str):
                    continue
                answered.add(replica)
                if answer.get("rollout") is None:
                    seen.pop(replica, None)
                else:
                    seen[replica] = answer["rollout"]
                if len(answered) >= replicas:
                    break
        return dict(seen)

    def unsplit(self, endpoint: str) -> bool:
        """Whether every replica read routes no rollout any more."""
        self.windows.pop(endpoint, None)
        return not self.read(endpoint)

    def _checked(self, endpoint: str, plan: dict[str, Any]) -> str | None:
        """None once the candidate serves its version and answered its smoke request; the
        failure when it could not; "" while it starts."""
        key = (endpoint, int(plan["generation"]), str(plan["candidate"]))
        if key in self.checked:
            return self.checked[key]
        deployer = self.deployer
        client = deployer._client()
        applications = deployer._details(client).get("applications") or {}
        application: dict[str, Any] = applications.get(candidate_name(endpoint)) or {}
        status = application.get("status")
        if _version(application) != plan["candidate"]:
            return ""
        if status == "DEPLOY_FAILED":
            self.checked[key] = f"Ray Serve could not deploy it: {application.get('message')}"
            return self.checked[key]
        if status != "RUNNING":
            return ""
        url = f"{deployer.proxy_url}/-/candidates/{endpoint}"
        problem = _smoke(deployer, self.models[endpoint], url, str(plan["candidate"]))
        if problem == "":
            return ""
        self.checked[key] = problem
        return problem

    # --- the end of a rollout ----------------------------------------------------------------

    def retire(self, client: Any, endpoint: str) -> None:
        """Delete the candidate's application once the endpoint's old replicas are gone (they
        may still send it requests while they drain)."""
        deployer = self.deployer
        name = candidate_name(endpoint)
        deadline = time.monotonic() + RETIRE_WAIT_S
        while time.monotonic() < deadline:
            applications = deployer._details(client).get("applications") or {}
            if name not in applications:
                return
            states = {r.get("state") for r in _replica_list(applications.get(endpoint))}
            if states <= {"RUNNING"}:
                break
            time.sleep(0.25)
        deployer._put(client, {name: None})
        self.plans.pop(endpoint, None)
        self.windows.pop(endpoint, None)


def _version(application: dict[str, Any] | None) -> str | None:
    config = (application or {}).get("deployed_app_config") or {}
    for deployment in config.get("deployments", []):
        if deployment.get("name") == DEPLOYMENT:
            version = (deployment.get("user_config") or {}).get("version")
            return str(version) if version else None
    return None


def _replicas(application: dict[str, Any]) -> int:
    config = application.get("deployed_app_config") or {}
    for deployment in config.get("deployments", []):
        if deployment.get("name") == DEPLOYMENT:
            return max(1, int(deployment.get("num_replicas") or 1))
    return 1


def _replica_list(application: dict[str, Any] | None) -> list[dict[str, Any]]:
    deployments = (application or {}).get("deployments") or {}
    replicas: list[dict[str, Any]] = (deployments.get(DEPLOYMENT) or {}).get("replicas") or []
    return replicas


def _smoke(deployer: RayDeployer, model: str, url: str, version: str) -> str | None:
    """None when the candidate at `url` serves `version` and its smoke request passes, the
    failure when it does not, "" when it does not answer yet."""
    import httpx

    from modelci.deploy.smoke import smoke_request

    try:
        metadata = httpx.get(f"{url}/metadata", timeout=READ_TIMEOUT_S)
        if metadata.status_code != 200 or metadata.json().get("version") != version:
            return ""
        try:
            smoke = smoke_request(deployer.workspace, deployer.workspace.model(model))
        except ConfigError:
            smoke = None
        if smoke is None:
            return None
        answer = httpx.post(
            f"{url}/invocations",
            content=smoke[0],
            headers={"content-type": smoke[1]},
            timeout=60,
        )
    except (httpx.HTTPError, ValueError):
        return ""
    if not 200 <= answer.status_code < 300:
        return f"the smoke request got {answer.status_code}: {answer.text[:300]}"
    return None
