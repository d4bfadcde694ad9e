"""The input signature: what a fitted model and its training channel say about its columns,
how it is recorded in the model folder, and the check of a decoded request against it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelci.runtime.errors import BadRequest, HandlerError
from modelci.runtime.handlers import Handler, load_handler
from modelci.runtime.introspection import main, model_columns, read_channel, signature_of
from modelci.runtime.signature import (
    SIGNATURE_FILE,
    Column,
    Signature,
    read_signature,
)
from tests.support.churn import EXAMPLES, churn_rows, train_churn_model

CHANNEL = EXAMPLES / "data" / "churn" / "train.csv"
NAMES = [f"f{i}" for i in range(20)]


@pytest.fixture(scope="module")
def churn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_churn_model(tmp_path_factory)


def fitted(estimator: object, columns: int = 3, frame: bool = False) -> object:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, columns))
    y = np.arange(40) % 2
    data = pd.DataFrame(x, columns=[f"c{i}" for i in range(columns)]) if frame else x
    return estimator.fit(data, y)  # type: ignore[attr-defined]


def test_model_columns_come_from_n_features_in_and_feature_names_in() -> None:
    assert model_columns(fitted(LogisticRegression())) == (3, None)
    assert model_columns(fitted(LogisticRegression(), frame=True)) == (3, ["c0", "c1", "c2"])
    assert model_columns({"bias": 0.5}) == (None, None)


def test_a_model_that_says_nothing_of_its_columns_has_no_signature() -> None:
    assert signature_of({"bias": 0.5}, None, CHANNEL, ["customer_id"]) is None


def test_the_channel_names_the_columns_once_key_and_label_are_left_out() -> None:
    header, rows = read_channel(CHANNEL)
    assert header is not None and header[0] == "customer_id" and header[-1] == "label"
    assert len(rows) > 100
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        churn_rows(), np.arange(len(churn_rows())) % 2
    )
    signature = signature_of(model, model.predict, CHANNEL, ["customer_id"])
    assert signature is not None
    assert [c.name for c in signature.columns] == NAMES
    assert {c.dtype for c in signature.columns} == {"number"}
    # scikit-learn's linear models refuse both, whatever StandardScaler lets through
    assert {(c.nan, c.infinity) for c in signature.columns} == {(False, False)}
    assert signature.sources == ("model", "channel train.csv", "probe")
    # without the key left out the channel has 21 candidates for 20 columns: no names, but
    # a table of numbers only still says the columns are numbers
    unnamed = signature_of(model, None, CHANNEL)
    assert unnamed is not None
    assert [c.name for c in unnamed.columns] == [None] * 20
    assert {c.dtype for c in unnamed.columns} == {"number"}
    assert {c.nan for c in unnamed.columns} == {None}  # nothing was asked of the model


def test_a_model_that_takes_nan_is_recorded_as_taking_it() -> None:
    signature = signature_of(fitted(HistGradientBoostingClassifier(max_iter=5)), None)
    assert signature is not None and {c.nan for c in signature.columns} == {None}
    model = fitted(HistGradientBoostingClassifier(max_iter=5))
    probed = signature_of(model, model.predict)  # type: ignore[attr-defined]
    assert probed is not None and {c.nan for c in probed.columns} == {True}


def test_string_columns_of_the_channel_are_strings(tmp_path: Path) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "part.csv").write_text("id,size,colour,label\n1,2.5,red,0\n2,3.5,blue,1\n")
    model = fitted(LogisticRegression(), columns=2)
    model.feature_names_in_ = np.array(["size", "colour"], dtype=object)  # type: ignore[attr-defined]
    signature = signature_of(model, None, channel)
    assert signature is not None
    assert [(c.name, c.dtype) for c in signature.columns] == [
        ("size", "number"),
        ("colour", "string"),
    ]
    checked = signature.check(np.array([["2.5", "green"]]))
    assert checked.dtype.kind == "U"  # a string column keeps the row as strings
    with pytest.raises(
        BadRequest, match=r"column 0 \('size'\): expected a number, got the string 'big'"
    ):
        signature.check(np.array([["big", "green"]]))


@pytest.fixture
def signature() -> Signature:
    columns = [Column(f"c{i}", "number", nan=False, infinity=False) for i in range(3)]
    return Signature(columns, ["model"])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((1, 2)), r"expected rows of 3 columns \(c0, c1, c2\), got rows of 2 values"),
        (
            np.zeros((1, 1, 3)),
            r"a 2-D array of rows\), got an array of 3 dimensions, shape \[1, 1, 3\]",
        ),
        (
            np.array([[1.0, np.nan, 2.0]]),
            r"row 0, column 1 \('c1'\): expected a finite number, got NaN",
        ),
        (
            np.array([[1.0, 2.0, 3.0], [1.0, 2.0, -np.inf]]),
            r"row 1, column 2 \('c2'\).*got -Infinity",
        ),
        (
            np.array([["1", "x", "2"]]),
            r"row 0, column 1 \('c1'\): expected a number, got the string 'x'",
        ),
        (np.array([[{}, 1, 2]], dtype=object), r"got values of type object"),
    ],
)
def test_a_request_that_does_not_fit_is_a_400_naming_expected_and_received(
    signature: Signature, array: np.ndarray, message: str
) -> None:
    with pytest.raises(BadRequest, match=message) as raised:
        signature.check(array)
    assert raised.value.status == 400


def test_fitting_rows_pass_and_numeric_strings_become_numbers(signature: Signature) -> None:
    rows = np.array([[1.0, 2.0, 3.0]])
    assert signature.check(rows) is rows  # the hot path copies nothing
    assert signature.check(np.array([["1", "2.5", "-3"]])).tolist() == [[1.0, 2.5, -3.0]]
    assert signature.check(np.array([[1, 2, 3]])).tolist() == [[1, 2, 3]]


def test_nan_is_checked_only_where_the_model_refuses_it() -> None:
    columns = [Column("a", "number", nan=True, infinity=False), Column("b", "number", False, None)]
    signature = Signature(columns, ["model"])
    assert signature.check(np.array([[np.nan, np.inf]])).shape == (1, 2)
    with pytest.raises(BadRequest, match=r"column 0 \('a'\).*got Infinity"):
        signature.check(np.array([[np.inf, 1.0]]))
    with pytest.raises(BadRequest, match=r"column 1 \('b'\).*got NaN"):
        signature.check(np.array([[1.0, np.nan]]))


def test_recorded_in_the_model_folder_and_read_back(tmp_path: Path, signature: Signature) -> None:
    signature.write(tmp_path)
    again = read_signature(tmp_path)
    assert again is not None and again.to_dict() == signature.to_dict()
    assert read_signature(tmp_path / "elsewhere") is None
    (tmp_path / SIGNATURE_FILE).write_text('{"columns": [{"dtype": "complex"}]}')
    with pytest.raises(ValueError, match=r"columns\[0\]\.dtype"):
        read_signature(tmp_path)


def test_introspection_records_what_the_server_then_checks(
    churn_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(churn_dir, model_dir)
    assert (
        main(["--model-dir", str(model_dir), "--channel", str(CHANNEL), "--drop", "customer_id"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    recorded = json.loads((model_dir / SIGNATURE_FILE).read_text())
    assert printed == recorded
    assert [c["name"] for c in recorded["columns"]] == NAMES
    handler = load_handler(model_dir)
    assert handler.signature is not None and handler.signature.to_dict() == recorded
    # an artifact trained before signatures were recorded: the model's own word, probed
    fallback = load_handler(churn_dir).signature
    assert fallback is not None and fallback.count == 20
    assert {(c.name, c.nan) for c in fallback.columns} == {(None, False)}


def test_the_models_own_refusal_of_an_input_is_a_400_but_a_predict_fn_error_is_a_500() -> None:
    def refuse(rows: object) -> object:
        raise ValueError("Input X contains NaN.")

    builtin = Handler(object(), name="model", default_predict=refuse)
    with pytest.raises(BadRequest, match=r"the model refused the input: Input X contains NaN"):
        builtin.predict(np.zeros((1, 2)))
    user = Handler(
        object(), name="inference.py", default_predict=None, predict_fn=lambda d, m: refuse(d)
    )
    with pytest.raises(HandlerError, match="predict_fn raised ValueError") as raised:
        user.predict(np.zeros((1, 2)))
    assert raised.value.status == 500
