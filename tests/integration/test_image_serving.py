"""Endpoints served from images (`[deploy] backend = "container"`): the endpoint host runs the
version as a container of its image, published on 127.0.0.1; requests and AWS's SDK reach it
through the host; an image whose `serve` crashes is rolled back; stopping the host stops its
containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelci.envs.engine import Engine
from tests.support.cli import CliResult
from tests.support.hosts import JSON, ROW, Hosts, prediction
from tests.support.images import BuiltImage
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.podman, pytest.mark.oci, pytest.mark.slow]
Run = Callable[..., CliResult]
CRASHING = "import os\nos._exit(3)  # the server dies as it loads the handler\n"


def containers(podman: Engine, endpoint: str, field: str = "Image") -> list[str]:
    """`field` (the image, or the name) of each container, running or not, of an endpoint."""
    out = podman.run(
        ["ps", "-a", "--filter", f"name=modelci-{endpoint}-", "--format", f"{{{{.{field}}}}}"],
        what="ps",
    )
    return out.split()


def _trained_clone(
    toy_image: BuiltImage,
    base_image: str,
    hosts: Hosts,
    modelci: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A clone of the image's repository at its commit, its toy trained, whose endpoints run
    as containers of the image (its host stopped by `hosts` at the end)."""
    root = tmp_path / "toy"
    subprocess.run(["git", "clone", "-q", str(toy_image.repo.root), str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "checkout", "-q", toy_image.commit], check=True)
    hosts.roots.append(root)
    monkeypatch.setenv("MODELCI_IMAGE_BASE", base_image)
    monkeypatch.setenv("MODELCI_IMAGE_REGISTRY", toy_image.registry)
    monkeypatch.setenv("MODELCI_DEPLOY_BACKEND", "container")
    assert modelci("-C", root, "train", "toy").code == 0
    return root


def test_the_host_serves_the_image_and_rolls_a_crash_back(
    podman: Engine,
    toy_image: BuiltImage,
    base_image: str,
    hosts: Hosts,
    modelci: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = _trained_clone(toy_image, base_image, hosts, modelci, tmp_path, monkeypatch)
    deployed = modelci("-C", root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json")
    assert deployed.code == 0, deployed.stdout + deployed.stderr
    outcome = deployed.json()
    version = f"toy-{toy_image.commit[:12]}"
    assert outcome["status"] == "deployed" and outcome["version"] == version
    assert containers(podman, "toy-staging") == [toy_image.tag]
    gateway = outcome["gateway_url"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    assert httpx.get(f"{gateway}/metadata").json()["version"] == version

    boto3 = pytest.importorskip("boto3")
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=gateway.rsplit("/endpoints/", 1)[0],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    answer = client.invoke_endpoint(
        EndpointName="toy-staging", Body=ROW, ContentType="application/json"
    )
    assert json.loads(answer["Body"].read()) == {"predictions": [3.5]}

    # a version whose image's serve crashes: the deploy fails and the first keeps serving
    (root / "models/toy/inference.py").write_text(CRASHING)
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "crashing handler"], check=True)
    assert modelci("-C", root, "train", "toy").code == 0
    failed = modelci("-C", root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json")
    assert failed.code == 1
    assert failed.json()["status"] in ("failed", "rolled_back")
    assert failed.json()["previous_version"] == version
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    assert hosts.endpoints(root)["toy-staging"]["version"] == version
    assert containers(podman, "toy-staging") == [toy_image.tag]  # the crashed one is gone

    hosts.stop()
    hosts.roots.clear()
    wait_until(lambda: not containers(podman, "toy-staging"), "the host's containers are gone")


def test_a_killed_host_leaves_its_container_to_the_next_host(
    podman: Engine,
    toy_image: BuiltImage,
    base_image: str,
    hosts: Hosts,
    modelci: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL of `modelci serve` takes the host with it but not the engine's container; the
    next host of the same folder removes it before it starts its own."""
    root = _trained_clone(toy_image, base_image, hosts, modelci, tmp_path, monkeypatch)
    deploy = ("-C", root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json")
    first = modelci(*deploy)
    assert first.code == 0, first.stdout + first.stderr
    [left] = containers(podman, "toy-staging", "Names")
    state = json.loads((root / ".modelci/serve/serve.json").read_text())
    host, supervisor = int(state["pid"]), int(state["supervisor"])

    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{host}").exists(), "the host exits with its supervisor")
    assert containers(podman, "toy-staging", "Names") == [left]  # the fault: nothing stopped it

    again = modelci(*deploy)  # starts a new host, which sweeps before it serves
    assert again.code == 0, again.stdout + again.stderr
    [serving] = containers(podman, "toy-staging", "Names")
    assert serving != left
    gateway = again.json()["gateway_url"]
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
    log = (root / ".modelci/serve/host.log").read_text()
    assert f"removed containers a killed host left running: {left}" in log
