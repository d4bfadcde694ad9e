"""The ASGI app's routes through Starlette's TestClient: answers, errors, metadata, metrics."""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from modelci.runtime.app import create_app
from tests.support.churn import churn_rows, train_churn_model, write_handler

with warnings.catch_warnings():
    # Starlette asks for `httpx2`; httpx is what this environment has, and works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

METADATA = {
    "model": "churn",
    "version": "churn-0123456789ab",
    "commit": "0123456789ab" * 3 + "0123",
    "environment": "staging",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_churn_model(tmp_path_factory)


@pytest.fixture
def app(model_dir: Path) -> Starlette:
    return create_app(model_dir, metadata=METADATA, max_body_bytes=64 * 1024)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def expected(model_dir: Path, rows: np.ndarray) -> list[int]:
    predictions: list[int] = joblib.load(model_dir / "model.joblib").predict(rows).tolist()
    return predictions


def assert_still_serving(client: TestClient, model_dir: Path) -> None:
    row = churn_rows()[:1]
    response = client.post("/invocations", json={"instances": row.tolist()})
    assert response.status_code == 200
    assert response.json() == {"predictions": expected(model_dir, row)}


def test_ping(client: TestClient) -> None:
    response = client.get("/ping")
    assert response.status_code == 200


@pytest.mark.parametrize("key", ["instances", "inputs", None])
def test_json_invocations_match_direct_predict(
    client: TestClient, model_dir: Path, key: str | None
) -> None:
    rows = churn_rows()[:25]
    document = rows.tolist() if key is None else {key: rows.tolist()}
    response = client.post("/invocations", json=document)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"predictions": expected(model_dir, rows)}


def test_one_json_row(client: TestClient, model_dir: Path) -> None:
    row = churn_rows()[7]
    response = client.post("/invocations", json=row.tolist())
    assert response.json() == {"predictions": expected(model_dir, row.reshape(1, -1))}


def test_csv_in_npy_out_and_npy_in_csv_out(client: TestClient, model_dir: Path) -> None:
    rows = churn_rows()[:10]
    text = "\n".join(",".join(map(repr, row)) for row in rows.tolist())
    response = client.post(
        "/invocations",
        content=text,
        headers={"content-type": "text/csv", "accept": "application/x-npy"},
    )
    assert response.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(response.content)).tolist() == expected(model_dir, rows)
    body = io.BytesIO()
    np.save(body, rows)
    response = client.post(
        "/invocations",
        content=body.getvalue(),
        headers={"content-type": "application/x-npy", "accept": "text/csv"},
    )
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.split() == [str(v) for v in expected(model_dir, rows)]


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"{broken", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"1,2\n3\n", {"content-type": "text/csv"}, 400, "same number"),
        (b"garbage", {"content-type": "application/x-npy"}, 400, "not a .npy"),
        (b"a=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "cannot read"),
        (b"[[1]]", {"content-type": "application/json", "accept": "text/html"}, 406, "text/html"),
        (b"[[1, 2]]", {"content-type": "application/json"}, 400, "expected rows of 20 columns"),
        (b"x" * (64 * 1024 + 1), {"content-type": "application/json"}, 413, "above the limit"),
    ],
)
def test_errors_have_a_status_and_a_message_and_the_server_keeps_serving(
    client: TestClient,
    model_dir: Path,
    content: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = client.post("/invocations", content=content, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error
    assert "Traceback" not in response.text
    assert_still_serving(client, model_dir)


def test_body_above_the_limit_without_content_length(client: TestClient, model_dir: Path) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(70):
            yield b" " * 1024

    response = client.post(
        "/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_still_serving(client, model_dir)


def test_default_body_limit_is_sagemakers(model_dir: Path) -> None:
    service = create_app(model_dir).state.service
    assert service.max_body_bytes == 6 * 1024 * 1024


def test_handler_that_raises_gives_500_with_message(model_dir: Path, tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        def predict_fn(data, model):
            if data.shape[0] == 2:
                raise RuntimeError("two rows are unlucky")
            return model.predict(data)
        """,
    )
    with TestClient(create_app(model_dir, handler_path=handler_path)) as client:
        response = client.post("/invocations", json=churn_rows()[:2].tolist())
        assert response.status_code == 500
        assert response.json() == {"error": "predict_fn raised RuntimeError: two rows are unlucky"}
        assert_still_serving(client, model_dir)


def test_wrong_method_and_unknown_route(client: TestClient) -> None:
    assert client.get("/invocations").status_code == 405
    assert client.get("/nothing").status_code == 404


def test_metadata(client: TestClient) -> None:
    document = client.get("/metadata").json()
    assert {key: document[key] for key in METADATA} == METADATA
    assert document["handler"] == "sklearn (model.joblib)"
    assert datetime.fromisoformat(document["loaded_at"]).tzinfo is not None


def test_metadata_without_a_file_names_every_key(model_dir: Path) -> None:
    with TestClient(create_app(model_dir)) as client:
        document = client.get("/metadata").json()
    assert set(document) == {
        "model",
        "version",
        "commit",
        "environment",
        "handler",
        "loaded_at",
        "signature",
    }
    assert document["model"] is None


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text page (0 when absent)."""
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name + (f"{{{selector}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    rows = churn_rows()
    for count in (1, 3, 5):
        assert client.post("/invocations", json=rows[:count].tolist()).status_code == 200
    client.post("/invocations", content=b"{", headers={"content-type": "application/json"})
    client.get("/ping")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = "modelci_requests_total"
    assert sample(text, requests, route="/invocations", status="200") == 3
    assert sample(text, requests, route="/invocations", status="400") == 1
    assert sample(text, requests, route="/ping", status="200") == 1
    latency = "modelci_request_duration_seconds_count"
    assert sample(text, latency, route="/invocations") == 4
    assert sample(text, "modelci_batch_size_count") == 3
    assert sample(text, "modelci_batch_size_sum") == 9
    assert sample(text, "modelci_requests_in_flight") == 0


def test_openapi(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "churn inference"
    assert set(document["paths"]) == {"/ping", "/invocations", "/metadata", "/metrics"}
    responses = document["paths"]["/invocations"]["post"]["responses"]
    assert {"200", "400", "406", "413", "415", "500"} <= set(responses)
    json.dumps(document)
