"""Adaptive batching: concurrent requests share predict calls and each gets exactly its rows."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from modelci.serve import create_app
from modelci.serve.batching import Batcher
from tests.support.churn import churn_rows, train_churn_model, write_handler


class RecordingModel:
    """Predicts each row's own id (column 0) times 10 plus its width; records every call."""

    def __init__(self, fail_on_nan: bool = False, wrong_length: bool = False):
        self.calls: list[int] = []
        self.fail_on_nan = fail_on_nan
        self.wrong_length = wrong_length

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(rows.shape[0])
        if self.fail_on_nan and np.isnan(rows).any():
            raise ValueError("NaN in input")
        result = rows[:, 0] * 10 + rows.shape[1]
        return result[:1] if self.wrong_length and rows.shape[0] > 1 else result


def rows_for(request: int, count: int, width: int = 3) -> np.ndarray:
    rows = np.full((count, width), -1.0)
    rows[:, 0] = [request * 1000 + i for i in range(count)]
    return rows


def expect(rows: np.ndarray) -> list[float]:
    return (rows[:, 0] * 10 + rows.shape[1]).tolist()


async def gather_submits(batcher: Batcher, requests: list[np.ndarray]) -> list[object]:
    return await asyncio.gather(
        *(batcher.submit(rows) for rows in requests), return_exceptions=True
    )


def test_concurrent_requests_are_merged_and_split_back() -> None:
    model = RecordingModel()
    batcher = Batcher(model.predict, max_size=1000, max_wait_ms=2)
    generator = random.Random(7)
    requests = [rows_for(i, generator.randint(1, 9)) for i in range(50)]
    results = asyncio.run(gather_submits(batcher, requests))
    assert model.calls == [sum(len(rows) for rows in requests)]
    for rows, result in zip(requests, results, strict=True):
        assert isinstance(result, np.ndarray)
        assert result.tolist() == expect(rows)


def test_batches_hold_at_most_max_size_rows_unless_one_request_is_larger() -> None:
    model = RecordingModel()
    batcher = Batcher(model.predict, max_size=16, max_wait_ms=2)
    counts = [5, 7, 3, 40, 2, 9, 9, 1, 16, 4]
    requests = [rows_for(i, count) for i, count in enumerate(counts)]
    results = asyncio.run(gather_submits(batcher, requests))
    assert sum(model.calls) == sum(counts)
    assert all(call <= 16 for call in model.calls if call != 40)
    assert 40 in model.calls
    assert max(call for call in model.calls if call != 40) > 9  # something was merged
    for rows, result in zip(requests, results, strict=True):
        assert np.asarray(result).tolist() == expect(rows)


def test_requests_of_different_widths_are_not_merged() -> None:
    model = RecordingModel()
    batcher = Batcher(model.predict, max_size=100, max_wait_ms=2)
    requests = [rows_for(0, 2, width=3), rows_for(1, 3, width=3), rows_for(2, 4, width=5)]
    results = asyncio.run(gather_submits(batcher, requests))
    assert model.calls == [5, 4]
    for rows, result in zip(requests, results, strict=True):
        assert np.asarray(result).tolist() == expect(rows)


def test_one_bad_request_does_not_fail_its_batch() -> None:
    model = RecordingModel(fail_on_nan=True)
    batcher = Batcher(model.predict, max_size=100, max_wait_ms=2)
    poisoned = rows_for(1, 2)
    poisoned[1, 1] = np.nan
    requests = [rows_for(0, 3), poisoned, rows_for(2, 1)]
    results = asyncio.run(gather_submits(batcher, requests))
    assert np.asarray(results[0]).tolist() == expect(requests[0])
    assert isinstance(results[1], ValueError)
    assert np.asarray(results[2]).tolist() == expect(requests[2])
    assert model.calls == [6, 3, 2, 1]  # the batch, then each alone


def test_a_model_that_is_not_row_wise_is_called_per_request() -> None:
    model = RecordingModel(wrong_length=True)
    batcher = Batcher(model.predict, max_size=100, max_wait_ms=2)
    requests = [rows_for(0, 1), rows_for(1, 1)]
    results = asyncio.run(gather_submits(batcher, requests))
    assert [np.asarray(r).tolist() for r in results] == [expect(rows) for rows in requests]


def test_a_lone_request_never_waits_for_the_timer() -> None:
    model = RecordingModel()
    batcher = Batcher(model.predict, max_size=64, max_wait_ms=600_000)

    async def lone() -> object:
        return await asyncio.wait_for(batcher.submit(rows_for(0, 1)), timeout=30)

    assert np.asarray(asyncio.run(lone())).tolist() == expect(rows_for(0, 1))


def test_a_flush_waits_for_a_request_still_reading_its_body() -> None:
    model = RecordingModel()
    batcher = Batcher(model.predict, max_size=64, max_wait_ms=600_000)

    async def scenario() -> list[object]:
        batcher.arrive()  # request A
        batcher.arrive()  # request B, whose body is still arriving
        batcher.arrived()
        first = asyncio.ensure_future(batcher.submit(rows_for(0, 2)))
        for _ in range(5):
            await asyncio.sleep(0)  # let the loop run: no flush while B is on its way
        assert model.calls == []

        async def request_b() -> object:
            batcher.arrived()  # as the app does: body read, then rows submitted at once
            return await batcher.submit(rows_for(1, 3))

        second = asyncio.ensure_future(request_b())
        return list(await asyncio.wait_for(asyncio.gather(first, second), timeout=30))

    results = asyncio.run(scenario())
    assert model.calls == [5]
    assert [np.asarray(r).tolist() for r in results] == [
        expect(rows_for(0, 2)),
        expect(rows_for(1, 3)),
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_churn_model(tmp_path_factory)


async def post_all(app: object, bodies: list[bytes]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/invocations", content=body, headers={"content-type": "application/json"}
                )
                for body in bodies
            )
        )


def batch_sizes(app: object) -> tuple[float, float]:
    text = app.state.service.metrics.render()[0].decode()  # type: ignore[attr-defined]
    lines = [line for line in text.splitlines() if line.startswith("modelci_batch_size_")]
    values = dict(line.rsplit(" ", 1) for line in lines)
    return float(values["modelci_batch_size_count"]), float(values["modelci_batch_size_sum"])


def test_app_merges_concurrent_requests_of_the_real_model(model_dir: Path) -> None:
    app = create_app(model_dir, batch_max_size=64)
    rows = churn_rows()
    model = joblib.load(model_dir / "model.joblib")
    generator = random.Random(11)
    slices = []
    start = 0
    for _ in range(120):
        count = generator.randint(1, 6)
        slices.append(slice(start % 400, start % 400 + count))
        start += count
    responses = asyncio.run(post_all(app, [json.dumps(rows[s].tolist()).encode() for s in slices]))
    for part, response in zip(slices, responses, strict=True):
        assert response.status_code == 200
        assert response.json() == {"predictions": model.predict(rows[part]).tolist()}
    calls, total_rows = batch_sizes(app)
    assert total_rows == sum(s.stop - s.start for s in slices)
    assert calls < len(slices)


def test_app_batching_keeps_each_requests_own_rows(tmp_path: Path) -> None:
    """With a model whose answer names its row, any mix-up between requests shows."""
    handler_path = write_handler(
        tmp_path,
        """
        class RowIds:
            def predict(self, rows):
                return rows[:, 0] * 10 + rows.shape[1]

        def model_fn(model_dir):
            return RowIds()
        """,
    )
    app = create_app(tmp_path, handler_path=handler_path, batch_max_size=32)
    generator = random.Random(3)
    requests = [rows_for(i, generator.randint(1, 12)) for i in range(200)]
    responses = asyncio.run(post_all(app, [json.dumps(r.tolist()).encode() for r in requests]))
    for rows, response in zip(requests, responses, strict=True):
        assert response.json() == {"predictions": expect(rows)}
    calls, _ = batch_sizes(app)
    assert calls < len(requests)


def test_app_with_predict_fn_predicts_per_request(model_dir: Path, tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        calls = []

        def predict_fn(data, model):
            calls.append(len(data))
            return model.predict(data)
        """,
    )
    app = create_app(model_dir, handler_path=handler_path)
    rows = churn_rows()
    bodies = [json.dumps(rows[i : i + 2].tolist()).encode() for i in range(30)]
    responses = asyncio.run(post_all(app, bodies))
    model = joblib.load(model_dir / "model.joblib")
    for i, response in enumerate(responses):
        assert response.json() == {"predictions": model.predict(rows[i : i + 2]).tolist()}
    assert batch_sizes(app) == (0.0, 0.0)
