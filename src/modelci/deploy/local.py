"""Endpoints on this machine: the `modelci serve` host follows the registry; `deploy` asks it
to catch up now and waits until it serves the new version. The host is started in the
background when none runs (one per repository)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from modelci.deploy.base import Answer, Deployer, Served, Superseded, stop_if_superseded
from modelci.errors import ConfigError, DeployFailed
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.registry.base import Shadow

START_TIMEOUT_S = 60.0
DEFAULT_PORT = 8080
PROBE_TIMEOUT_S = 2.0  # `status`'s look at a host and its endpoints
PREPARE_TIMEOUT_S = 30.0  # the host reads the registry and launches, without waiting for it


class LocalDeployer(Deployer):
    """Talks to the repository's endpoint host over loopback HTTP."""

    weighted = True  # the host routes a rollout's share to its candidate (modelci.serve.traffic)

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._url: str | None = None

    # --- the host ---------------------------------------------------------------------------

    def running_url(self) -> str | None:
        """The host's URL when one runs for this repository."""
        from modelci.serve.hoststate import read_state

        state = read_state(self.workspace)
        return str(state["url"]) if state else None

    def ensure_host(self) -> str:
        """The host's URL, starting it in the background first when none runs."""
        if self._url:
            return self._url
        url = self.running_url()
        if url is None:
            url = self._start_host()
        self._url = url
        return url

    def _start_host(self) -> str:
        from modelci.serve.hoststate import starting_pid
        from modelci.serve.workers import free_port

        port = int(os.environ.get("MODELCI_SERVE_PORT") or DEFAULT_PORT)
        if not _port_free(port):
            port = free_port()
        logs = self.workspace.state_dir / "serve"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "host.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelci",
                    "-C",
                    str(self.workspace.root),
                    "serve",
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            url = self.running_url()
            if url and self._get(url, "/ping", timeout=2) is not None:
                # the host outlives this call: reap it when it ends, so that a caller that runs
                # on (tests, scripts) neither keeps a zombie nor warns of a running subprocess
                threading.Thread(target=process.wait, daemon=True).start()
                return url
            if process.poll() is not None:
                # another deploy may have started the host first (ours lost the lock), or a
                # supervisor holds the lock while it starts its host again: wait for it
                url = self.running_url()
                if url and self._get(url, "/ping", timeout=2) is not None:
                    return url
                if starting_pid(self.workspace) is None:
                    break
            time.sleep(0.05)
        tail = (logs / "host.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise DeployFailed("the endpoint host did not start: " + " | ".join(tail))

    def _auth(self) -> dict[str, str]:
        """The header carrying the host's token, when it has one (see modelci.serve.auth)."""
        from modelci.serve.auth import client_token
        from modelci.serve.hoststate import read_state

        token = client_token(read_state(self.workspace))
        return {"authorization": f"Bearer {token}"} if token else {}

    def _get(self, url: str, path: str, timeout: float) -> dict[str, Any] | None:
        try:
            status, body, _ = _request("GET", url + path, headers=self._auth(), timeout=timeout)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    # --- Deployer ---------------------------------------------------------------------------

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        url = self.ensure_host()
        deadline = time.monotonic() + timeout
        while True:
            try:
                code, body, _ = _request(
                    "POST",
                    f"{url}/-/sync",
                    headers=self._auth(),
                    timeout=max(deadline - time.monotonic(), 1),
                )
                status = json.loads(body)
            except (OSError, ValueError) as error:
                raise DeployFailed(f"the endpoint host at {url} did not answer: {error}") from None
            if code == 401:
                raise DeployFailed(
                    f"the endpoint host at {url} refused the token (MODELCI_SERVE_TOKEN, else "
                    "the host's --token-file) or its absence"
                )
            state = status["endpoints"].get(endpoint, {})
            if state.get("version") == version and state.get("healthy"):
                return Served(endpoint, version, state.get("url"), f"{url}/endpoints/{endpoint}")
            failure = state.get("last_error")
            if failure and failure.get("version") == version:
                raise DeployFailed(f"{endpoint} could not serve {version}: {failure['error']}")
            # the host follows the pointer, not this deploy: once another deploy has moved it,
            # waiting on would only end at the deadline
            stop_if_superseded(superseded, endpoint, version)
            if time.monotonic() > deadline:
                raise DeployFailed(f"{endpoint} did not serve {version} within {timeout:g} s")
            time.sleep(0.1)

    def prepare(
        self, endpoint: str, model: str, environment: str, version: str | None, commit: str | None
    ) -> bool:
        """Have a running host start a spare of `version` (modelci.serve.prepared); no host
        is started for it: the deploy starts one."""
        url = self.running_url()
        if url is None:
            return False
        body = {"endpoint": endpoint, "model": model, "environment": environment}
        try:
            code, _, _ = _request(
                "POST",
                f"{url}/-/prepare",
                json.dumps({**body, "version": version, "commit": commit}).encode(),
                {**self._auth(), "content-type": "application/json"},
                timeout=PREPARE_TIMEOUT_S,
            )
        except OSError:
            return False
        return code == 202

    def rollout_state(self, endpoint: str, follow: bool = False) -> list[dict[str, Any]]:
        """The host's view of the endpoint's rollout; `follow`: after it read the registry.
        None ([]) when the answer is cut off: a host killed mid-rollout is started again on
        the same socket by its supervisor, and rejoins the rollout (modelci.serve.traffic);
        the rollout's wait asks again until its deadline, its bake until its end."""
        url = self.ensure_host()
        try:
            code, body, _ = _request(
                "POST" if follow else "GET",
                f"{url}/-/sync" if follow else f"{url}/-/endpoints",
                headers=self._auth(),
                timeout=300 if follow else 30,  # a sync starts the candidate before answering
            )
            state = json.loads(body)["endpoints"].get(endpoint, {}).get("rollout")
        except (OSError, ValueError, KeyError) as error:
            if isinstance(error, OSError) and not isinstance(error, ConnectionRefusedError):
                return []  # refused: no supervisor holds the socket any more
            raise DeployFailed(f"the endpoint host at {url} did not answer: {error!r}") from None
        if code != 200 or state is None:
            return []
        return [{**state, "host": "local", "url": f"{url}/endpoints/{endpoint}"}]

    def await_shadow(self, endpoint: str, shadow: Shadow | None, timeout: float) -> str | None:
        """Ask the host to catch up, and wait until it mirrors to the shadow's candidate (or,
        for None, to none); the candidate server's URL."""
        url = self.running_url() if shadow is None else self.ensure_host()
        if url is None:
            return None  # no host runs: nothing mirrors
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, body, _ = _request(
                    "POST",
                    f"{url}/-/sync",
                    headers=self._auth(),
                    timeout=max(deadline - time.monotonic(), 1),
                )
                served = json.loads(body)["endpoints"].get(endpoint) or {}
            except (OSError, ValueError, KeyError) as error:
                raise DeployFailed(f"the endpoint host at {url} did not answer: {error}") from None
            state = served.get("shadow") or {}
            if shadow is None and not state.get("version"):
                return None
            if shadow is not None:
                if state.get("event") == shadow.event and state.get("healthy"):
                    return str(state.get("url"))
                failure = state.get("last_error") or {}
                if failure.get("event") == shadow.event:
                    raise DeployFailed(
                        f"{endpoint}: the shadow {shadow.version} could not start: "
                        f"{failure.get('error')}"
                    )
            if time.monotonic() > deadline:
                raise DeployFailed(f"{endpoint}: no shadow change within {timeout:g} s")
            time.sleep(0.1)

    def remove(self, endpoint: str, timeout: float) -> None:
        url = self.running_url()
        if url is None:
            return  # no host runs: nothing serves the endpoint
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, body, _ = _request(
                    "POST", f"{url}/-/sync", timeout=max(deadline - time.monotonic(), 1)
                )
                served = json.loads(body)["endpoints"]
            except (OSError, ValueError) as error:
                raise DeployFailed(f"the endpoint host at {url} did not answer: {error}") from None
            if endpoint not in served:
                return
            if time.monotonic() > deadline:
                raise DeployFailed(f"{endpoint} was still served after {timeout:g} s")
            time.sleep(0.1)

    def invoke(
        self, endpoint: str, body: bytes, content_type: str, accept: str | None = None
    ) -> Answer:
        url = self.running_url()
        if url is None:
            raise ConfigError(
                "no endpoint host runs for this repository: deploy a model, or "
                "start one with `modelci serve`"
            )
        headers = {"content-type": content_type, **self._auth()}
        if accept:
            headers["accept"] = accept
        try:
            status, answer, answer_type = _request(
                "POST", f"{url}/endpoints/{endpoint}/invocations", body, headers, timeout=60
            )
        except OSError as error:
            raise DeployFailed(f"{endpoint}: {error}") from None
        return Answer(status, answer, answer_type)

    def describe(self, endpoint: str) -> dict[str, object] | None:
        """What the host says of the endpoint, checked by a quick `/ping` through the host:
        its gateway URL (`url`; `server_url` is the version server's own), `healthy` and
        `status` (SERVING, UNHEALTHY, NOT_SERVING when its version could not start,
        UNREACHABLE when the host does not answer). None when no host runs or it does not
        know the endpoint: nothing serves it."""
        url = self.running_url()
        if url is None:
            return None
        status = self._get(url, "/-/endpoints", timeout=PROBE_TIMEOUT_S)
        if status is None:
            return {
                "healthy": False,
                "status": "UNREACHABLE",
                "url": None,
                "message": f"the endpoint host at {url} does not answer",
            }
        served: dict[str, Any] | None = status["endpoints"].get(endpoint)
        if served is None:
            return None
        failure = served.get("last_error") or {}
        if served.get("version") is None:  # only a failed start: no version runs
            return {
                "healthy": False,
                "status": "NOT_SERVING",
                "url": None,
                "message": str(failure.get("error") or ""),
                "last_error": failure or None,
            }
        gateway = f"{url}/endpoints/{endpoint}"
        healthy = bool(served.get("healthy")) and self._answers(f"{gateway}/ping")
        return {
            **served,
            "healthy": healthy,
            "status": "SERVING" if healthy else "UNHEALTHY",
            "url": f"{gateway}/invocations",
            "server_url": served.get("url"),
        }

    def _answers(self, url: str) -> bool:
        """Whether a GET of `url` answers 200 within PROBE_TIMEOUT_S."""
        try:
            code, _, _ = _request("GET", url, headers=self._auth(), timeout=PROBE_TIMEOUT_S)
        except OSError:
            return False
        return code == 200


def _request(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, str | None]:
    """One loopback HTTP request with the standard library (an HTTP client library would
    cost every deploy its import)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
    )
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path or "/", body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), answer.getheader("content-type")
    except http.client.HTTPException as error:  # a broken answer: as unreachable as no answer
        raise OSError(f"{url}: {error!r}") from None
    finally:
        connection.close()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
