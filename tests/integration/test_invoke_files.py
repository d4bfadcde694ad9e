"""`modelci invoke --data FILE` sends the body as the file's extension says (CSV, NPY, JSON)
to a real endpoint host, and `modelci serve --status` shows that host to people as a table
and to scripts as JSON."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import CliResult
from tests.support.repos import GitRepo
from tests.support.toy import INFERENCE, SERVED_SPEC, train_script

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def deployed(
    git_repo: Callable[..., GitRepo], modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GitRepo]:
    """The toy model (a row's sum plus 0.5) trained and deployed to `toy-staging`; the endpoint
    host the deploy starts is stopped at the end."""
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(_free_port()))
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write("models/toy/train.py", train_script())
    repo.write("models/toy/requirements.txt", "")
    repo.write("models/toy/model.toml", SERVED_SPEC.format(bias=0.5))
    repo.write("models/toy/inference.py", INFERENCE)
    rows = "".join(f"{i},{i % 3},{i % 5},{i % 2}\n" for i in range(20))
    repo.write("data/toy/train.csv", "id,a,b,label\n" + rows)
    repo.write("data/toy/test.csv", "id,a,b,label\n" + rows)
    repo.commit("toy")
    trained = modelci("-C", repo.root, "train", "toy")
    assert trained.code == 0, trained.stdout + trained.stderr
    try:
        deploy = modelci(
            "-C", repo.root, "deploy", "toy", "--env", "staging", "--skip-tests", "--json"
        )
        assert deploy.code == 0, deploy.stdout + deploy.stderr
        yield repo
    finally:
        stopped = modelci("-C", repo.root, "serve", "--stop", "--json")
        assert stopped.code == 0, stopped.stdout + stopped.stderr


def test_invoke_sends_csv_npy_and_json_files_as_what_they_are(
    deployed: GitRepo, modelci: Run, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 2.0], [3.0, 4.0]]))
    bodies = {
        "rows.csv": b"1,2\n3,4\n",
        "rows.npy": buffer.getvalue(),
        "rows.json": b"[[1, 2], [3, 4]]",
        "rows.txt": b"[[1, 2], [3, 4]]",  # an unknown extension is JSON
    }
    for name, body in bodies.items():
        path = tmp_path / name
        path.write_bytes(body)
        answer = modelci("-C", deployed.root, "invoke", "toy-staging", "--data", path)
        assert answer.code == 0, (name, answer.stdout, answer.stderr)
        assert json.loads(answer.stdout) == {"predictions": [3.5, 7.5]}, name

    # --content-type still decides when given: a CSV file sent as JSON is a bad request
    wrong = modelci(
        "-C", deployed.root, "invoke", "toy-staging", "--data", tmp_path / "rows.csv",
        "--content-type", "application/json", "--json",
    )  # fmt: skip
    assert wrong.code == 1 and wrong.json()["status"] == 400


def test_serve_status_is_a_table_for_people_and_json_for_scripts(
    deployed: GitRepo, modelci: Run
) -> None:
    document = modelci("-C", deployed.root, "serve", "--status", "--json")
    assert document.code == 0
    report = document.json()
    assert report["running"] is True
    endpoint = report["endpoints"]["toy-staging"]
    assert endpoint["healthy"] is True and endpoint["version"].startswith("toy-")

    human = modelci("-C", deployed.root, "serve", "--status")
    assert human.code == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == f"endpoint host at {report['url']}: 1 endpoint(s)"
    assert lines[1].split() == [
        "endpoint",
        "version",
        "healthy",
        "restarts",
        "pid",
        "loaded",
        "url",
    ]
    assert lines[2].split() == [
        "toy-staging",
        endpoint["version"],
        "yes",
        str(endpoint["restarts"]),
        str(endpoint["pid"]),
        "yes",  # its own process: loaded while healthy
        endpoint["url"],
    ]
    assert "{" not in human.stdout  # not the JSON document

    modelci("-C", deployed.root, "serve", "--stop")
    stopped = modelci("-C", deployed.root, "serve", "--status")
    assert stopped.code == 0
    assert stopped.stdout.startswith("no endpoint host runs for this repository")
