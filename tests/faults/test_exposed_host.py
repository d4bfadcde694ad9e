"""An exposed host needs a key: no listening beyond loopback without a token (unless
--insecure), every route but /ping needs the token when one is set, version servers get none
of the host's secrets, and names are checked whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelci.serve.auth import check_exposure, is_loopback
from modelci.serve.workers import server_environment
from tests.support.cli import CliResult
from tests.support.hosts import JSON, ROW, Toy, host_url, prediction
from tests.support.ports import free_port
from tests.support.repos import GitRepo, add_model
from tests.support.servers import SECRET_ACCESS_KEY
from tests.support.waiting import wait_until

TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
BEARER = {"authorization": f"Bearer {TOKEN}"}
# an address outside loopback that no interface here has: even a host that wrongly went ahead
# could not bind it, so this test never listens beyond 127.0.0.0/8
UNASSIGNED = "192.0.2.1"  # TEST-NET-1, RFC 5737


def _serve(root: Path, *options: str, env: dict[str, str] | None = None) -> CliResult:
    done = subprocess.run(
        [sys.executable, "-m", "modelci", "-C", str(root), "serve", "--json", *options],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def test_loopback_or_not() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        assert check_exposure(host, None, insecure=False) is None
    for host in ("0.0.0.0", "::", "10.1.2.3", UNASSIGNED, "example.com", "127.0.0.1\n"):
        assert not is_loopback(host), host
        with pytest.raises(Exception, match="MODELCI_SERVE_TOKEN or --token-file"):
            check_exposure(host, None, insecure=False)
        assert check_exposure(host, TOKEN, insecure=False) is None
        assert "without a token" in (check_exposure(host, None, insecure=True) or "")


def test_exposed_host_without_a_token_refuses_before_binding(
    git_repo: Callable[..., GitRepo],
) -> None:
    repo = git_repo()
    env = {k: v for k, v in os.environ.items() if k != "MODELCI_SERVE_TOKEN"}
    refused = _serve(repo.root, "--host", UNASSIGNED, "--port", str(free_port()), env=env)
    assert refused.code == 2, refused.stdout + refused.stderr
    error = json.loads(refused.stdout)["error"]
    assert "MODELCI_SERVE_TOKEN or --token-file" in error["message"] and error["key"] == "--host"
    assert not (repo.root / ".modelci/serve").exists()  # no lock taken, no socket, no state

    short = _serve(repo.root, "--host", UNASSIGNED, env={**env, "MODELCI_SERVE_TOKEN": "abc"})
    assert short.code == 2 and "at least 16" in json.loads(short.stdout)["error"]["message"]

    # --insecure goes ahead, with a warning (here binding fails: the address is nobody's)
    insecure = _serve(repo.root, "--host", UNASSIGNED, "--insecure", env=env)
    assert "without a token (--insecure)" in insecure.stderr
    assert "cannot listen" in json.loads(insecure.stdout)["error"]["message"]


def _endpoints(url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/-/endpoints", headers=BEARER, timeout=10).json()
    return document


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


@pytest.mark.slow
def test_a_host_with_a_token_asks_for_it(
    toy: Toy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELCI_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("MODELCI_REGISTRY_URL", "sqlite:///.modelci/registry.db")
    toy.version()
    gateway = toy.deployed()["gateway_url"]  # the host deploy started took the token
    url = host_url(toy.root)
    assert url is not None
    invocations = f"{gateway}/invocations"

    assert httpx.post(invocations, content=ROW, headers=JSON).status_code == 401
    wrong = {**JSON, "authorization": f"Bearer {TOKEN[:-1]}x"}
    assert httpx.post(invocations, content=ROW, headers=wrong).status_code == 401
    assert prediction(httpx.post(invocations, content=ROW, headers={**JSON, **BEARER})) == 3.5
    header = {**JSON, "x-modelci-token": TOKEN}
    assert prediction(httpx.post(invocations, content=ROW, headers=header)) == 3.5
    for method, path in (("GET", "/-/endpoints"), ("POST", "/-/sync"), ("GET", "/-/health")):
        assert httpx.request(method, url + path).status_code == 401, path
        assert httpx.request(method, url + path, headers=BEARER).status_code == 200, path
    assert httpx.get(f"{gateway}/metadata").status_code == 401
    assert httpx.get(f"{url}/ping").status_code == 200  # for load balancers' health checks

    # names are matched whole: a trailing newline is not a valid endpoint name
    newline = httpx.post(f"{url}/endpoints/toy-staging%0A/invocations", headers=BEARER)
    assert newline.status_code == 400 and "not a valid endpoint name" in newline.text

    body = tmp_path / "row.json"
    body.write_bytes(ROW)
    invoked = toy.modelci("-C", toy.root, "invoke", "toy-staging", "--data", body, "--json")
    assert invoked.code == 0 and invoked.json()["status"] == 200

    [endpoint] = _endpoints(url)["endpoints"].values()
    inherited = _environment(endpoint["pid"])
    for secret in ("MODELCI_SERVE_TOKEN", "AWS_SECRET_ACCESS_KEY", "MODELCI_REGISTRY_URL"):
        assert secret not in inherited, secret
    assert SECRET_ACCESS_KEY not in json.dumps(inherited) and TOKEN not in json.dumps(inherited)
    assert "PATH" in inherited and inherited["PYTHONPATH"]

    boto3 = pytest.importorskip("boto3")
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def add_token(request: Any, **_: Any) -> None:
        request.headers["X-Modelci-Token"] = TOKEN

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", add_token)
    answer = client.invoke_endpoint(
        EndpointName="toy-staging", Body=ROW, ContentType="application/json"
    )
    assert json.loads(answer["Body"].read()) == {"predictions": [3.5]}
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json()["stopped"] is True


@pytest.mark.slow
def test_deploy_finds_the_token_file_of_a_running_host(
    toy: Toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    toy.version()
    port = free_port()
    host = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelci",
            "-C",
            str(toy.root),
            "serve",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    toy.hosts.started.append(host)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: host_url(toy.root) == url, "the host writes its state")
    assert httpx.get(f"{url}/-/endpoints").status_code == 401
    with monkeypatch.context() as wrong:
        wrong.setenv("MODELCI_SERVE_TOKEN", TOKEN.upper())
        refused = toy.deploy()
    assert refused.code == 1 and "refused the token" in refused.json()["reason"]
    gateway = toy.deployed()["gateway_url"]
    assert (
        prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers={**JSON, **BEARER}))
        == 3.5
    )
    status = toy.modelci("-C", toy.root, "serve", "--status", "--json")
    assert list(status.json()["endpoints"]) == ["toy-staging"]
    stopped = toy.modelci("-C", toy.root, "serve", "--stop", "--json")
    assert stopped.code == 0 and stopped.json()["stopped"] is True


def test_version_servers_inherit_only_the_allowed_variables() -> None:
    environ = {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "MODELCI_SERVE_TOKEN": TOKEN,
        "MODELCI_REGISTRY_URL": "postgresql://ci:hunter2@db/modelci",
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "PYTHONHOME": "/elsewhere",
    }
    assert server_environment(environ, "/runtime") == {
        "PATH": "/usr/bin",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/runtime",
    }


def test_model_names_are_matched_whole(
    git_repo: Callable[..., GitRepo], modelci: Callable[..., CliResult]
) -> None:
    repo = git_repo()
    add_model(repo, "models/churn")
    repo.write("modelci.toml", "")  # validate wants a modelci repository
    repo.write(
        "models/churn/model.toml",
        '[model]\nname = "churn\\n"\n\n[train]\nentrypoint = "train.py"\n',
    )
    repo.commit("a name with a newline")
    result = modelci("-C", repo.root, "validate", "--json")
    assert result.code == 1, result.stdout  # that model's failure
    [row] = result.json()["models"]
    assert row["status"] == "failed" and "not a valid model name" in row["error"]["message"]
    made = modelci("init", repo.root / "new", "--model", "churn\n", "--json")
    assert made.code == 2 and "not a valid model name" in made.json()["error"]["message"]


def test_other_names_are_matched_whole() -> None:
    from modelci.aliases import check_name
    from modelci.ciconfig import render
    from modelci.errors import ConfigError

    with pytest.raises(ConfigError, match="must match"):
        check_name("latest\n", ["staging", "production"])
    with pytest.raises(ConfigError, match="not a branch name"):
        render("github", main="main\n")
    with pytest.raises(ConfigError):
        render("github", python="3.11\n")
