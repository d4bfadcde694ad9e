"""`python -m modelci.runtime.server` as a real process on a free port of 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import pytest

from tests.support.churn import churn_rows, train_churn_model
from tests.support.ports import free_port
from tests.support.server_process import SRC, running_server


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_churn_model(tmp_path_factory)


def test_server_process_answers_and_stops_cleanly(model_dir: Path, tmp_path: Path) -> None:
    metadata = {"model": "churn", "version": "churn-abcdef012345", "environment": "staging"}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    rows = churn_rows()[:40]
    expected = joblib.load(model_dir / "model.joblib").predict(rows).tolist()
    arguments = ["--model-dir", str(model_dir), "--metadata-file", str(tmp_path / "metadata.json")]
    with running_server(*arguments) as server, httpx.Client(base_url=server.url) as client:
        answer = client.post("/invocations", json={"instances": rows.tolist()})
        assert answer.status_code == 200
        assert answer.json() == {"predictions": expected}
        for row, value in zip(rows[:5], expected[:5], strict=True):
            text = ",".join(map(repr, row.tolist()))
            one = client.post(
                "/invocations",
                content=text,
                headers={"content-type": "text/csv", "accept": "text/csv"},
            )
            assert one.text.strip() == str(value)
        bad = client.post(
            "/invocations", content=b"{", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        too_large = client.post(
            "/invocations",
            content=b" " * (6 * 1024 * 1024 + 1),
            headers={"content-type": "application/json"},
        )
        assert too_large.status_code == 413
        assert client.post("/invocations", json=rows[:1].tolist()).status_code == 200
        document = client.get("/metadata").json()
        assert {key: document[key] for key in metadata} == metadata
        assert document["handler"] == "sklearn (model.joblib)"
        assert client.get("/openapi.json").status_code == 200
        process = server.process
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to exit by it.
    assert process.returncode in (0, -signal.SIGTERM)


def test_workers_share_one_metrics_page(model_dir: Path) -> None:
    arguments = ["--model-dir", str(model_dir), "--workers", "2"]
    with running_server(*arguments) as server:
        rows = churn_rows()[:1].tolist()
        sent = 0
        for _ in range(30):
            # A new connection each time, so both workers get a share.
            assert httpx.post(f"{server.url}/invocations", json=rows).status_code == 200
            sent += 1
        for _ in range(4):  # whichever worker answers, the page counts every worker's requests
            text = httpx.get(f"{server.url}/metrics").text
            found = re.search(
                r'^modelci_requests_total\{route="/invocations",status="200"\} ([0-9.]+)$',
                text,
                flags=re.MULTILINE,
            )
            assert found is not None
            assert float(found.group(1)) == sent


def test_unservable_model_folder_exits_with_a_message(tmp_path: Path) -> None:
    for workers in ("1", "2"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelci.runtime.server",
                "--model-dir",
                str(tmp_path),
                "--port",
                str(free_port()),
                "--workers",
                workers,
            ],
            env=os.environ | {"PYTHONPATH": str(SRC)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "error: no handler fits" in result.stderr
