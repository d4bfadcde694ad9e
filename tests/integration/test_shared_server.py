"""`python -m modelci.runtime.server --shared` as a real process: several versions registered
in one server, each loaded on first use with its own handler modules, unloaded when idle or
when the cap on loaded versions is reached, a version that cannot load failing alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.server_process import SRC, answers_ping
from tests.support.waiting import wait_until

# inference.py imports a sibling module of the same name in every version: each version must
# get its own `features`, not the first one loaded
INFERENCE = """\
import json, os
import features

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)

def predict_fn(data, model):
    return [features.scale(sum(row)) + model["bias"] for row in data]
"""
BROKEN = """\
def model_fn(model_dir):
    raise RuntimeError("this version cannot load its model")
"""
JSON = {"content-type": "application/json"}


@contextmanager
def shared_server(*arguments: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "modelci.runtime.server", "--shared", "--port", str(port)]
    process = subprocess.Popen(
        [*command, *arguments],
        env=os.environ | {"PYTHONPATH": str(SRC)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ping(url), "the shared server answers", process=process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def version(root: Path, name: str, bias: float, scale: int, inference: str = INFERENCE) -> Path:
    """A version's model folder with its inference.py and a `features.py` scaling by `scale`."""
    folder = root / name
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"bias": bias}))
    (folder / "inference.py").write_text(inference)
    (folder / "features.py").write_text(f"def scale(x):\n    return x * {scale}\n")
    return folder


def register(client: httpx.Client, key: str, folder: Path) -> None:
    config: dict[str, Any] = {
        "model_dir": str(folder),
        "handler_path": str(folder / "inference.py"),
        "metadata": {"model": key.split("/")[0], "version": key.split("/")[1]},
    }
    answer = client.put(f"/-/models/{key}", json=config)
    assert answer.status_code == 200, answer.text


def predict(client: httpx.Client, key: str) -> Any:
    answer = client.post(f"/models/{key}/invocations", content=b"[[1, 2]]", headers=JSON)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"][0]


def loaded(client: httpx.Client) -> dict[str, bool]:
    versions = client.get("/-/models").json()["versions"]
    return {key: state["loaded"] for key, state in versions.items()}


def test_versions_share_a_process_each_with_its_own_code(tmp_path: Path) -> None:
    one, two = version(tmp_path, "one", 0.5, 10), version(tmp_path, "two", 1.5, 100)
    broken = version(tmp_path, "broken", 0.0, 1, inference=BROKEN)
    with shared_server() as url, httpx.Client(base_url=url, timeout=30) as client:
        register(client, "a/a-1", one)
        register(client, "b/b-1", two)
        register(client, "c/c-1", broken)
        assert loaded(client) == {"a/a-1": False, "b/b-1": False, "c/c-1": False}
        assert predict(client, "a/a-1") == 30.5  # 3 x 10 + 0.5: its own features.py
        assert predict(client, "b/b-1") == 301.5  # 3 x 100 + 1.5: not the first one's
        assert client.get("/models/a/a-1/metadata").json()["version"] == "a-1"
        assert client.get("/models/b/b-1/metadata").json()["model"] == "b"
        assert "modelci_requests" in client.get("/models/b/b-1/metrics").text
        # the broken one fails its own routes, with its error, and nobody else's
        assert client.get("/models/c/c-1/ping").json() == {"status": "healthy", "loaded": False}
        failed = client.get("/models/c/c-1/ping", params={"load": "1"})
        assert failed.status_code == 500
        assert "this version cannot load its model" in failed.json()["error"]
        assert client.get("/models/c/c-1/ping").status_code == 500  # until it loads
        assert predict(client, "a/a-1") == 30.5
        assert client.get("/models/x/x-1/ping").status_code == 404
        assert client.get("/models/a/a-1/nothing").status_code == 404
        assert client.put("/-/models/d/d-1", content=b"[]").status_code == 400
        assert loaded(client) == {"a/a-1": True, "b/b-1": True, "c/c-1": False}
        assert client.delete("/-/models/b/b-1").status_code == 200
        assert "b/b-1" not in loaded(client)
        assert client.get("/models/b/b-1/ping").status_code == 404


def test_idle_versions_are_unloaded_and_load_again(tmp_path: Path) -> None:
    one, two = version(tmp_path, "one", 0.5, 10), version(tmp_path, "two", 1.5, 100)
    with (
        shared_server("--idle-unload-s", "0.5", "--max-loaded", "1") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        register(client, "a/a-1", one)
        register(client, "b/b-1", two)
        assert predict(client, "a/a-1") == 30.5
        assert loaded(client) == {"a/a-1": True, "b/b-1": False}
        assert predict(client, "b/b-1") == 301.5  # the cap: a gives way to b
        assert loaded(client) == {"a/a-1": False, "b/b-1": True}
        wait_until(lambda: not any(loaded(client).values()), "b is unloaded when idle")
        assert predict(client, "b/b-1") == 301.5
        state = client.get("/-/models").json()
        assert state["versions"]["b/b-1"]["loads"] == 2
        assert state["rss_bytes"] > 0
