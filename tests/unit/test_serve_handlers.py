"""Handlers: the built-in ones chosen from the model folder, and a user inference.py's hooks."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from modelci.serve.errors import BadRequest, HandlerError, HandlerNotFound, NotAcceptable
from modelci.serve.handlers import Handler, find_builtin, load_handler
from tests.support.churn import churn_rows, train_churn_model, write_handler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_churn_model(tmp_path_factory)


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A model folder of the test's own, to add files to."""
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_builtin_sklearn_answers_like_the_model(model_dir: Path) -> None:
    handler = load_handler(model_dir)
    rows = churn_rows()
    expected = joblib.load(model_dir / "model.joblib").predict(rows)
    body, content_type = handler.predict_body(
        json.dumps({"instances": rows.tolist()}).encode(), "application/json", "application/json"
    )
    assert content_type == "application/json"
    assert json.loads(body) == {"predictions": expected.tolist()}
    assert handler.name == "sklearn (model.joblib)"
    assert handler.batchable


def test_predict_body_answers_in_the_accepted_type(model_dir: Path) -> None:
    handler = load_handler(model_dir)
    rows = churn_rows()[:5]
    expected = joblib.load(model_dir / "model.joblib").predict(rows)
    csv_body = "\n".join(",".join(map(repr, row)) for row in rows.tolist()).encode()
    body, content_type = handler.predict_body(csv_body, "text/csv", "application/x-npy")
    assert content_type == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), expected)
    body, content_type = handler.predict_body(csv_body, "text/csv; charset=utf-8", "text/csv")
    assert (content_type, body.decode().split()) == ("text/csv", [str(v) for v in expected])
    with pytest.raises(NotAcceptable) as caught:
        handler.predict_body(csv_body, "text/csv", "image/png")
    assert caught.value.status == 406


def test_pickle_file_is_loaded_too(model_copy: Path) -> None:
    model = joblib.load(model_copy / "model.joblib")
    (model_copy / "model.joblib").unlink()
    (model_copy / "model.pkl").write_bytes(pickle.dumps(model))
    handler = load_handler(model_copy)
    assert handler.name == "sklearn (model.pkl)"
    rows = churn_rows()[:3]
    np.testing.assert_array_equal(handler.predict(rows), model.predict(rows))


def test_file_named_model_wins_and_others_are_ambiguous(model_copy: Path, tmp_path: Path) -> None:
    shutil.copy(model_copy / "model.joblib", model_copy / "other.joblib")
    assert find_builtin(model_copy) == ("sklearn", model_copy / "model.joblib")
    (model_copy / "model.joblib").rename(model_copy / "first.joblib")
    with pytest.raises(HandlerNotFound, match="several model files"):
        find_builtin(model_copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "settings.json").write_text('{"not": "a booster"}')
    assert find_builtin(empty) is None
    with pytest.raises(HandlerNotFound, match="no handler fits"):
        load_handler(empty)


def test_xgboost_json_is_recognised_by_content(tmp_path: Path) -> None:
    (tmp_path / "booster.json").write_text('{"learner": {"attributes": {}}, "version": [2, 1, 0]}')
    assert find_builtin(tmp_path) == ("xgboost", tmp_path / "booster.json")


@pytest.mark.parametrize(
    ("file", "package"), [("model.onnx", "onnxruntime"), ("model.ubj", "xgboost")]
)
def test_missing_library_is_a_clear_error(tmp_path: Path, file: str, package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        pass
    else:
        pytest.skip(f"{package} is installed here")
    (tmp_path / file).write_bytes(b"\0")
    with pytest.raises(HandlerNotFound, match=f"{package} is not installed"):
        load_handler(tmp_path)


def test_model_fn_alone_uses_default_codecs_and_predict(tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path / "src",
        """
        class Doubler:
            def predict(self, rows):
                return rows.sum(axis=1) * 2

        def model_fn(model_dir):
            assert model_dir.endswith("model")
            return Doubler()
        """,
    )
    (tmp_path / "model").mkdir()
    handler = load_handler(tmp_path / "model", handler_path)
    assert handler.name == "inference.py (model_fn)"
    assert handler.batchable
    body, _ = handler.predict_body(b"[[1, 2], [3, 4.5]]", "application/json")
    assert json.loads(body) == {"predictions": [6.0, 15.0]}


def test_input_fn_with_builtin_model(model_dir: Path, tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        import numpy as np

        def input_fn(body, content_type):
            if content_type != "text/plain":
                raise ValueError(f"unsupported content type {content_type}")
            return np.array([[float(v) for v in line.split("|")] for line in body.decode().split()])
        """,
    )
    handler = load_handler(model_dir, handler_path)
    assert handler.name == "inference.py (input_fn) + sklearn (model.joblib)"
    rows = churn_rows()[:4]
    text = "\n".join("|".join(map(repr, row)) for row in rows.tolist()).encode()
    body, _ = handler.predict_body(text, "text/plain")
    expected = joblib.load(model_dir / "model.joblib").predict(rows)
    assert json.loads(body)["predictions"] == expected.tolist()
    with pytest.raises(BadRequest, match="unsupported content type application/json"):
        handler.predict_body(b"[]", "application/json")


def test_predict_fn_is_called_per_request_and_not_batched(model_dir: Path, tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        def predict_fn(data, model):
            return model.predict_proba(data)[:, 1]
        """,
    )
    handler = load_handler(model_dir, handler_path)
    assert not handler.batchable
    rows = churn_rows()[:3]
    body, _ = handler.predict_body(json.dumps(rows.tolist()).encode(), "application/json")
    expected = joblib.load(model_dir / "model.joblib").predict_proba(rows)[:, 1]
    np.testing.assert_allclose(json.loads(body)["predictions"], expected, rtol=0, atol=1e-12)


def test_output_fn_may_return_body_and_content_type(model_dir: Path, tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        def output_fn(prediction, accept):
            if accept == "text/plain":
                return " ".join(str(p) for p in prediction)
            return ("|".join(str(p) for p in prediction).encode(), "application/x-pipes")
        """,
    )
    handler = load_handler(model_dir, handler_path)
    rows = json.dumps(churn_rows()[:3].tolist()).encode()
    expected = joblib.load(model_dir / "model.joblib").predict(churn_rows()[:3])
    assert handler.predict_body(rows, "application/json", "text/plain") == (
        " ".join(map(str, expected)).encode(),
        "text/plain",
    )
    assert handler.predict_body(rows, "application/json", None) == (
        "|".join(map(str, expected)).encode(),
        "application/x-pipes",
    )


def test_code_inference_py_in_the_model_folder_is_found(model_copy: Path) -> None:
    write_handler(
        model_copy / "code",
        """
        def output_fn(prediction, accept):
            return "found"
        """,
    )
    handler = load_handler(model_copy)
    assert handler.name.startswith("inference.py (output_fn)")
    body, _ = handler.predict_body(json.dumps(churn_rows()[:1].tolist()).encode(), None)
    assert body == b"found"


def test_hooks_that_raise_become_errors_with_a_status(tmp_path: Path) -> None:
    handler_path = write_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            return object()

        def input_fn(body, content_type):
            if body == b"bad":
                raise ValueError("cannot parse that")
            if body == b"bug":
                raise RuntimeError("input bug")
            return body

        def predict_fn(data, model):
            if data == b"boom":
                raise ZeroDivisionError("division by zero")
            return [1]

        def output_fn(prediction, accept):
            return 42
        """,
    )
    handler = load_handler(tmp_path, handler_path)
    with pytest.raises(BadRequest, match="cannot parse that"):
        handler.predict_body(b"bad", "text/plain")
    with pytest.raises(HandlerError, match="input_fn raised RuntimeError: input bug"):
        handler.predict_body(b"bug", "text/plain")
    with pytest.raises(HandlerError, match="predict_fn raised ZeroDivisionError") as caught:
        handler.predict_body(b"boom", "text/plain")
    assert caught.value.status == 500
    with pytest.raises(HandlerError, match="output_fn returned int"):
        handler.predict_body(b"ok", "text/plain")


def test_model_without_predict_needs_predict_fn(tmp_path: Path) -> None:
    handler_path = write_handler(tmp_path, "def model_fn(model_dir):\n    return object()\n")
    with pytest.raises(HandlerNotFound, match="no predict method"):
        load_handler(tmp_path, handler_path)
    no_model = write_handler(tmp_path / "other", "def predict_fn(data, model):\n    return data\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HandlerNotFound, match="defines no model_fn"):
        load_handler(tmp_path / "empty", no_model)


def test_handler_is_a_handler(model_dir: Path) -> None:
    assert isinstance(load_handler(model_dir), Handler)
