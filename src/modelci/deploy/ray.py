"""Endpoints on Ray Serve: each endpoint is a Serve application named after it, at
`/endpoints/<endpoint>` on Serve's proxy, whose deployment runs modelci's inference server
(`modelci.runtime.ray_app`) with `[serve].workers` replicas.

modelci writes applications through Serve's REST API on the cluster's dashboard (`PUT
/api/serve/applications/`), as `serve deploy` does, rather than joining the cluster with
`ray.init` + `serve.run`: the machine running modelci needs no Ray node of its own, only the
dashboard's HTTP port, as for training. That API takes the whole set of applications, so a
deploy reads the applications in place, replaces its own and writes them all back.

A version's application config carries the version as the deployment's `user_config` and its
model and handler as the runtime environment's working directory (uploaded to the cluster
once, named by content), so a deploy is a config change that Serve rolls out replica by
replica, draining the old ones; `apply` waits until the application is RUNNING with the new
config and its server answers `/metadata` with the version. A rollback re-applies the previous
version's config the same way.

Canary and linear rollouts (`weighted`) run the candidate beside the serving version as a
second application whose share of the requests the serving replicas route to it
(`modelci.deploy.ray_rollout`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from modelci.deploy.base import Answer, Deployer, Served, Superseded, stop_if_superseded
from modelci.deploy.ray_rollout import RayRollouts, candidate_name, rollout_of, with_rollout
from modelci.errors import ConfigError, DeployFailed, ModelciError
from modelci.raycluster import RayCluster, quiet_ray_sdk
from modelci.runtime.ray_app import DEPLOYMENT
from modelci.workspace import Workspace

IMPORT_PATH = "modelci.runtime.ray_app:build"
REPLICA_NUM_CPUS = 0.25  # replicas reserve a quarter CPU: a rolling update fits on 2 cores
MAX_ONGOING_REQUESTS = 128  # per replica; the server batches what arrives together
GRACEFUL_SHUTDOWN_S = 30.0  # an old replica finishes its requests before it stops
POLL_S = 0.25
REWRITE_AFTER_S = 5.0
HTTP_TIMEOUT_S = 60.0


class RayDeployer(Deployer):
    """Puts endpoints on the Ray Serve of the cluster `[ray]` names."""

    weighted = True  # the serving replicas route a rollout's share (modelci.deploy.ray_rollout)

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.settings = workspace.project.ray
        self.cluster = RayCluster.from_settings(self.settings)
        self.rollouts = RayRollouts(self)

    @property
    def proxy_url(self) -> str:
        """Serve's HTTP proxy, as modelci reaches it (the head's host when it binds all)."""
        host = self.settings.serve_host
        if host in ("0.0.0.0", "::"):
            host = self.cluster.dashboard_url.split("://", 1)[1].rsplit(":", 1)[0]
        return f"http://{host}:{self.settings.serve_port}"

    def endpoint_url(self, endpoint: str) -> str:
        return f"{self.proxy_url}/endpoints/{endpoint}"

    # --- Serve's REST API ---------------------------------------------------------------------

    def _client(self) -> Any:
        self.cluster.check()  # an unreachable cluster: a ConfigError naming its address
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

        quiet_ray_sdk()

        try:
            return ServeSubmissionClient(self.cluster.dashboard_url)
        except Exception as error:  # the SDK raises ConnectionError/RuntimeError
            raise DeployFailed(f"Ray Serve on {self.cluster.describe()}: {error}") from None

    def _details(self, client: Any) -> dict[str, Any]:
        try:
            details: dict[str, Any] = client.get_serve_details()
        except Exception as error:
            raise DeployFailed(f"Ray Serve on {self.cluster.describe()}: {error}") from None
        return details

    def _put(self, client: Any, changes: dict[str, dict[str, Any] | None]) -> None:
        """Write every application back, those named in `changes` replaced by their config
        (None: deleted)."""
        details = self._details(client)
        applications = []
        for name, application in (details.get("applications") or {}).items():
            if name in changes:
                continue
            deployed = application.get("deployed_app_config")
            if deployed is None:
                raise DeployFailed(
                    f"Ray Serve on {self.cluster.describe()} runs application {name!r}, "
                    "deployed with serve.run; modelci deploys through Serve's config API, which "
                    "would remove it"
                )
            applications.append(deployed)
        document = {
            "proxy_location": "HeadOnly",  # one proxy, on the head: one port on one host
            "http_options": {"host": self.settings.serve_host, "port": self.settings.serve_port},
            "applications": [*applications, *filter(None, changes.values())],
        }
        try:
            client.deploy_applications(document)
        except Exception as error:
            raise DeployFailed(
                f"Ray Serve on {self.cluster.describe()} refused the config of "
                f"{', '.join(changes)}: {error}"
            ) from None

    # --- a version's application ----------------------------------------------------------

    def application(self, client: Any, endpoint: str, version: str) -> dict[str, Any]:
        """The Serve application config that serves `version` at `endpoint`, its working
        directory and modelci's runtime uploaded to the cluster."""
        from modelci.envs.locks import lock_for
        from modelci.envs.runtime_copy import runtime_dir
        from modelci.train.jobs import spec_at
        from modelci.train.ray import lock_environment

        workspace = self.workspace
        with workspace.registry() as registry:
            record = registry.get_version(version)
        if record is None or not record.artifact_sha256:
            raise ConfigError(f"version {version} has no artifact to serve")
        spec = spec_at(workspace, record.model, record.commit, bool(record.details.get("dirty")))
        environment = next(
            (e for e in workspace.environments if workspace.endpoint(record.model, e) == endpoint),
            None,
        )
        folder = self._working_dir(
            record.version,
            record.commit,
            record.artifact_sha256,
            spec.folder,
            bool(record.details.get("dirty")),
        )
        lock_text, _ = lock_for(workspace.root, spec)
        runtime_env: dict[str, Any] = {
            "working_dir": str(folder),
            "py_modules": [str(runtime_dir(workspace.state_dir) / "modelci")],
        }
        runtime_env |= lock_environment(lock_text)
        try:
            client._upload_working_dir_if_needed(runtime_env)
            client._upload_py_modules_if_needed(runtime_env)
        except Exception as error:
            raise DeployFailed(
                f"could not upload {version} to {self.cluster.describe()}: {error}"
            ) from None
        serve = spec.file.serve
        return {
            "name": endpoint,
            "route_prefix": f"/endpoints/{endpoint}",
            "import_path": IMPORT_PATH,
            "runtime_env": runtime_env,
            "args": {
                "model_dir": "model",
                "handler": f"code/{serve.handler}" if serve.handler else None,
                "metadata": {
                    "model": record.model,
                    "version": version,
                    "commit": record.commit,
                    "environment": environment,
                },
                "batch_max_size": serve.batch.max_size,
                "batch_max_wait_ms": serve.batch.max_wait_ms,
            },
            "deployments": [
                {
                    "name": DEPLOYMENT,
                    "num_replicas": serve.workers,
                    "user_config": {"version": version},
                    "ray_actor_options": {"num_cpus": REPLICA_NUM_CPUS},
                    "max_ongoing_requests": MAX_ONGOING_REQUESTS,
                    "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_S,
                }
            ],
        }

    def _working_dir(
        self, version: str, commit: str, sha256: str, model_folder: str, dirty: bool
    ) -> Path:
        """`.modelci/ray/apps/<version>-<sha12>/` with `model/` (the artifact) and `code/`
        (the model folder at its commit), made once, atomically."""
        from modelci.train.jobs import export
        from modelci.train.unpacked import materialize, verify_copy

        workspace = self.workspace
        target = workspace.state_dir / "ray" / "apps" / f"{version}-{sha256[:12]}"
        cache = workspace.state_dir / "models"
        # verified on every use, the app folder's copy as much as the one it was taken from
        model_dir = materialize(workspace.store(), sha256, cache, version=version)
        if target.is_dir():
            verify_copy(target / "model", sha256, cache, version=version)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".app-", dir=target.parent))
        try:
            shutil.copytree(model_dir, scratch / "model")
            export(workspace.root, None if dirty else commit, [model_folder], scratch / "export")
            shutil.move(scratch / "export" / model_folder, scratch / "code")
            shutil.rmtree(scratch / "export")
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target

    # --- Deployer -------------------------------------------------------------------------

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        client = self._client()
        applications = self._details(client).get("applications") or {}
        serving = applications.get(endpoint)
        split = rollout_of(serving) is not None
        if split and serving and _state(serving)["version"] == version:
            # a rollout put back: the old version takes all traffic in place, nothing restarts
            config = with_rollout(serving["deployed_app_config"], None)
        else:
            config = self.application(client, endpoint, version)
        self._put(client, {endpoint: config})
        deadline = time.monotonic() + timeout
        written = time.monotonic()
        while True:
            application = (self._details(client).get("applications") or {}).get(endpoint)
            state = _state(application)
            if state["version"] == version:
                if state["status"] == "DEPLOY_FAILED":
                    raise DeployFailed(
                        f"{endpoint} could not serve {version} on Ray Serve: {state['message']}"
                    )
                if (
                    state["status"] == "RUNNING"
                    and self._serves(endpoint, version)
                    and not (split and not self.rollouts.unsplit(endpoint))
                ):
                    if candidate_name(endpoint) in applications:
                        self.rollouts.retire(client, endpoint)
                    url = self.endpoint_url(endpoint)
                    return Served(endpoint, version, url, url)
            stop_if_superseded(superseded, endpoint, version)  # never write ours over theirs
            if state["version"] != version and time.monotonic() - written > REWRITE_AFTER_S:
                # another deploy wrote the applications over ours: write ours again
                self._put(client, {endpoint: config})
                written = time.monotonic()
            if time.monotonic() > deadline:
                raise DeployFailed(
                    f"{endpoint} did not serve {version} on Ray Serve within "
                    f"{timeout:g} s (application {state['status']}: "
                    f"{state['message'] or 'no message'})"
                )
            time.sleep(POLL_S)

    def _serves(self, endpoint: str, version: str) -> bool:
        """Whether the server behind the proxy answers /metadata with `version`."""
        import httpx

        try:
            answer = httpx.get(f"{self.endpoint_url(endpoint)}/metadata", timeout=10)
            return answer.status_code == 200 and answer.json().get("version") == version
        except (httpx.HTTPError, ValueError):
            return False

    def rollout_state(self, endpoint: str, follow: bool = False) -> list[dict[str, Any]]:
        """Each serving replica's window of the endpoint's rollout; `follow`: write what the
        registry says (the candidate's application, the step in force) first."""
        if follow:
            self.rollouts.follow(endpoint)
        return self.rollouts.views(endpoint)

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        import httpx

        headers = {"content-type": content_type}
        if accept:
            headers["accept"] = accept
        try:
            answer = httpx.post(
                f"{self.endpoint_url(endpoint)}/invocations",
                content=body,
                headers=headers,
                timeout=HTTP_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            raise DeployFailed(
                f"{endpoint}: Ray Serve's proxy at {self.proxy_url} did not answer: {error}"
            ) from None
        if answer.status_code == 404 and self.describe(endpoint) is None:
            raise ConfigError(
                f"endpoint {endpoint!r} is not deployed on Ray Serve at {self.proxy_url}"
            )
        return Answer(answer.status_code, answer.content, answer.headers.get("content-type"))

    def describe(self, endpoint: str) -> dict[str, object] | None:
        try:
            client = self._client()
            application = (self._details(client).get("applications") or {}).get(endpoint)
        except ModelciError as error:
            return {
                "backend": "ray",
                "healthy": False,
                "status": "UNKNOWN",
                "message": error.render(),
            }
        if application is None:
            return None
        state = _state(application)
        rollout = rollout_of(application)
        return {
            "backend": "ray",
            "healthy": state["status"] == "RUNNING",
            "url": self.endpoint_url(endpoint),
            **state,
            **({"rollout": rollout} if rollout else {}),
        }


def _state(application: dict[str, Any] | None) -> dict[str, Any]:
    """An application's status, message, version (its user_config) and replicas."""
    if application is None:
        return {"status": "NOT_DEPLOYED", "message": "", "version": None, "replicas": []}
    config = application.get("deployed_app_config") or {}
    version = next(
        (
            d.get("user_config", {}).get("version")
            for d in config.get("deployments", [])
            if d.get("name") == DEPLOYMENT
        ),
        None,
    )
    deployment = (application.get("deployments") or {}).get(DEPLOYMENT, {})
    replicas = [
        {"state": r.get("state"), "node_ip": r.get("node_ip"), "replica_id": r.get("replica_id")}
        for r in deployment.get("replicas", [])
    ]
    return {
        "status": application.get("status"),
        "message": application.get("message") or "",
        "version": version,
        "replicas": replicas,
    }
