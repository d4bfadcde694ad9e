"""Request and answer bodies: JSON, CSV and NPY, and the choice of answer type."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from modelci.runtime import codecs
from modelci.runtime.errors import BadRequest, NotAcceptable, UnsupportedMediaType


def npy(array: object) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(array))
    return out.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1, 2, 3], [4, 5, 6]]}',
        b'{"inputs": [[1, 2, 3], [4, 5, 6]]}',
        b"[[1, 2, 3], [4, 5, 6]]",
    ],
)
def test_json_forms_give_rows(body: bytes) -> None:
    array = codecs.decode(body, "application/json")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("body", [b"[1, 2.5, 3]", b'{"instances": [1, 2.5, 3]}'])
def test_one_flat_list_is_one_row(body: bytes) -> None:
    assert codecs.decode(body, "application/json").tolist() == [[1.0, 2.5, 3.0]]


def test_string_features_are_kept() -> None:
    array = codecs.decode(b'[["a", 1], ["b", 2]]', "application/json")
    assert array.tolist() == [["a", "1"], ["b", "2"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"rows": [[1]]}', '"instances" or "inputs"'),
        (b"[]", "no rows"),
        (b'{"instances": 5}', "expected a list of rows"),
        (b"[[1, 2], [3]]", "same length"),
        (b'[{"f0": 1}]', "numbers or strings"),
    ],
)
def test_bad_json_is_a_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as caught:
        codecs.decode(body, "application/json")
    assert caught.value.status == 400


def test_csv_rows() -> None:
    array = codecs.decode(b"1,2,3\n4,5.5,-6\n\n", "text/csv")
    np.testing.assert_array_equal(array, [[1, 2, 3], [4, 5.5, -6]])
    assert codecs.decode(b"7", "text/csv").shape == (1, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"1,2\n3\n", "same number of numbers: row 1 holds 1, row 0 holds 2"),
        (b"1,2\n3,x\n", "CSV row 1, column 1: expected a number, got 'x'"),
        (b"\xff", "UTF-8"),
    ],
)
def test_bad_csv_is_a_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        codecs.decode(body, "text/csv")


def test_npy_roundtrip_and_one_row() -> None:
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(codecs.decode(npy(rows), "application/x-npy"), rows)
    assert codecs.decode(npy([1.0, 2.0]), "application/x-npy").shape == (1, 2)


def test_bad_npy_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match=r"not a \.npy"):
        codecs.decode(b"not an array", "application/x-npy")
    with pytest.raises(BadRequest, match="scalar"):
        codecs.decode(npy(3.0), "application/x-npy")
    archive = io.BytesIO()
    np.savez(archive, a=np.ones(2))
    with pytest.raises(BadRequest, match="npz"):
        codecs.decode(archive.getvalue(), "application/x-npy")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequest):
        codecs.decode(pickled.getvalue(), "application/x-npy")


def test_an_npy_header_declaring_more_than_the_body_holds_is_refused_unread() -> None:
    head = io.BytesIO()
    # 6 GB declared: NumPy would allocate it before finding the data missing
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f8", "fortran_order": False, "shape": (30_000_000, 25)}
    )
    with pytest.raises(BadRequest, match=r"declares 6000000000 bytes .* the body holds 8"):
        codecs.decode(head.getvalue() + bytes(8), "application/x-npy")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 33 + b"]" * 33,
        b'{"instances": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
        b"[" * 200_000,  # deeper than Python's recursion limit
    ],
)
def test_json_nested_beyond_the_limit_is_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(BadRequest, match="levels deep: the limit is 32"):
        codecs.decode(body, "application/json")


def test_json_depth_counts_no_bracket_inside_a_string() -> None:
    quoted = b'{"instances": [[1, 2]], "note": "' + b"[" * 100 + b'\\" ["}'
    assert codecs.json_depth(quoted) == 3
    assert codecs.decode(quoted, "application/json").shape == (1, 2)
    many_rows = json.dumps({"instances": [[1, 2]] * 100}).encode()
    assert codecs.json_depth(many_rows) == 3
    assert codecs.json_depth(b"[[1]]") == 0  # too few brackets to be deep: not scanned


def test_unknown_content_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType, match="text/plain") as caught:
        codecs.decode(b"1", "text/plain")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("Text/CSV", "text/csv"),
        ("", "application/json"),
    ],
)
def test_media_type(header: str | None, expected: str) -> None:
    assert codecs.media_type(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("application/x-npy", "application/x-npy"),
        ("text/html, text/csv;q=0.5, application/json;q=0.9", "application/json"),
        ("image/png, text/*", "text/csv"),
        ("application/json;q=0, text/csv", "text/csv"),
    ],
)
def test_accept_choice(header: str | None, expected: str) -> None:
    assert codecs.choose_accept(header) == expected


@pytest.mark.parametrize("header", ["text/html", "application/json;q=0", "image/*"])
def test_unanswerable_accept(header: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        codecs.choose_accept(header)
    assert caught.value.status == 406


def test_encoders() -> None:
    prediction = np.array([[0.25, 0.75], [1.0, 0.0]])
    assert json.loads(codecs.encode(prediction, "application/json")) == {
        "predictions": [[0.25, 0.75], [1.0, 0.0]]
    }
    assert codecs.encode(prediction, "text/csv") == b"0.25,0.75\n1.0,0.0\n"
    assert codecs.encode(np.array([1, 0, 1]), "text/csv") == b"1\n0\n1\n"
    decoded = np.load(io.BytesIO(codecs.encode(prediction, "application/x-npy")))
    np.testing.assert_array_equal(decoded, prediction)
    assert json.loads(codecs.encode({"label": np.int64(3)}, "application/json")) == {
        "predictions": {"label": 3}
    }
