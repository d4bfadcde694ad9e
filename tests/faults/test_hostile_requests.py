"""Client errors are 4xx, and limits exist: requests that do not fit a version's input signature,
malformed bodies, slow clients, control characters in paths and oversized bodies, sent over
real sockets to a real version server (the example churn classifier, its signature recorded
as training records it) and through a real endpoint host. Each is refused with the right 4xx
saying what was expected and what came, and good requests are answered throughout."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from modelci.runtime.limits import (
    BODY_TIMEOUT_VARIABLE,
    HEADER_TIMEOUT_VARIABLE,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
)
from modelci.runtime.signature import SIGNATURE_FILE
from tests.support.churn import EXAMPLES, churn_rows, train_churn_model
from tests.support.hosts import JSON, ROW, Toy, prediction
from tests.support.rawhttp import SlowClient, connect, exchange, read_answer, send_until_answered
from tests.support.server_process import SRC, Server, running_server
from tests.support.waiting import wait_until

READ_TIMEOUT_S = "1.5"  # the servers' header and body timeouts in these tests
CUT_OFF_DEADLINE_S = 30.0  # far beyond the timeouts: a server without them never cuts off


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn classifier with the signature training records: names from the channel."""
    folder = tmp_path_factory.mktemp("hostile") / "model"
    shutil.copytree(train_churn_model(tmp_path_factory), folder)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modelci.runtime.introspection",
            "--model-dir",
            str(folder),
            "--channel",
            str(EXAMPLES / "data" / "churn" / "train.csv"),
            "--drop",
            "customer_id",
        ],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    return folder


@pytest.fixture
def server(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv(HEADER_TIMEOUT_VARIABLE, READ_TIMEOUT_S)
    monkeypatch.setenv(BODY_TIMEOUT_VARIABLE, READ_TIMEOUT_S)
    with running_server("--model-dir", str(model_dir)) as started:
        yield started


def npy_head(shape: tuple[int, ...]) -> bytes:
    """A .npy header declaring `shape` of float64, without the data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


ROWS = churn_rows()[:3]
GOOD = json.dumps({"instances": ROWS.tolist()}).encode()


def row_with(index: int, value: str) -> bytes:
    """One churn row as JSON text with column `index` replaced by the JSON text `value`."""
    cells = [repr(float(v)) for v in ROWS[0]]
    cells[index] = value
    return f"[[{', '.join(cells)}]]".encode()


# (body, content type, status, what the message must say: expected and received)
HOSTILE = {
    "too-few-columns": (
        b"[[1.0, 2.0]]",
        "application/json",
        400,
        ["expected rows of 20 columns (f0, f1, f2", "got rows of 2 values"],
    ),
    "csv-too-many-columns": (
        (",".join(["1"] * 21) + "\n").encode(),
        "text/csv",
        400,
        ["expected rows of 20 columns", "got rows of 21 values"],
    ),
    "nan": (row_with(3, "NaN"), "application/json", 400, ["row 0, column 3 ('f3')", "got NaN"]),
    "null": (row_with(4, "null"), "application/json", 400, ["column 4 ('f4')", "NaN (or null)"]),
    "infinity": (row_with(5, "-Infinity"), "application/json", 400, ["'f5'", "got -Infinity"]),
    "string": (
        row_with(7, '"seven"'),
        "application/json",
        400,
        ["column 7 ('f7'): expected a number", "got the string 'seven'"],
    ),
    "wrong-rank": (
        json.dumps([ROWS.tolist()]).encode(),
        "application/json",
        400,
        ["a 2-D array of rows", "3 dimensions, shape [1, 3, 20]"],
    ),
    "deep-json": (
        b"[" * 5000 + b"]" * 5000,
        "application/json",
        400,
        [f"the limit is {MAX_JSON_DEPTH}", "5000 levels deep"],
    ),
    "npy-header-beyond-the-body-limit": (
        npy_head((MAX_BODY_BYTES, 20)) + b"\0" * 160,
        "application/x-npy",
        400,
        [f"declares {MAX_BODY_BYTES * 20 * 8} bytes", "shape [6291456, 20]", "the body holds 160"],
    ),
    "not-json": (b"{", "application/json", 400, ["not valid JSON"]),
}


def test_requests_that_do_not_fit_are_400_naming_expected_and_received(server: Server) -> None:
    expected = joblib.load(server_model(server) / "model.joblib").predict(ROWS).tolist()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, (body, content_type, status, says) in HOSTILE.items():
            answer = client.post(
                "/invocations", content=body, headers={"content-type": content_type}
            )
            assert answer.status_code == status, (name, answer.text)
            message = answer.json()["error"]
            for part in says:
                assert part in message, (name, message)
            good = client.post("/invocations", content=GOOD, headers=JSON)  # still serving
            assert good.status_code == 200 and good.json() == {"predictions": expected}, name
        # numbers sent as strings are read as numbers, as CSV's are
        as_strings = json.dumps([[str(v) for v in ROWS[0]]]).encode()
        answer = client.post("/invocations", content=as_strings, headers=JSON)
        assert answer.json() == {"predictions": expected[:1]}


def server_model(server: Server) -> Path:
    arguments = server.process.args
    assert isinstance(arguments, list)
    return Path(arguments[arguments.index("--model-dir") + 1])


def test_the_signature_is_published_in_metadata_and_openapi(
    server: Server, model_dir: Path
) -> None:
    recorded = json.loads((model_dir / SIGNATURE_FILE).read_text())
    assert [column["name"] for column in recorded["columns"]] == [f"f{i}" for i in range(20)]
    assert {(c["dtype"], c["nan"], c["infinity"]) for c in recorded["columns"]} == {
        ("number", False, False)
    }
    metadata = httpx.get(f"{server.url}/metadata").json()
    assert metadata["signature"] == recorded
    document = httpx.get(f"{server.url}/openapi.json").json()
    invocations = document["paths"]["/invocations"]["post"]
    assert invocations["x-modelci-signature"] == recorded
    bare = invocations["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    rows, row = bare["oneOf"]
    assert rows["items"] == row
    assert row["minItems"] == row["maxItems"] == 20
    assert row["prefixItems"][3] == {"type": "number", "title": "f3"}


def cut_off(client: SlowClient, what: str) -> bytes:
    """Wait until the server closes the slow client's connection; what it said before."""
    wait_until(client.closed.is_set, what, deadline_s=CUT_OFF_DEADLINE_S)
    return bytes(client.received)


def slow_clients(url: str, path: str) -> dict[str, SlowClient]:
    """Three slowloris clients: one that never sends a byte, one that trickles its head, one
    that trickles its body."""
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    return {
        "silent": SlowClient(url, b"", b""),
        "head": SlowClient(url, head.encode(), b"x-slow: 1\r\n"),
        "body": SlowClient(url, (head + "content-length: 100000\r\n\r\n").encode(), b"[1,"),
    }


def assert_slow_clients_are_cut_off(url: str, path: str, answer_good: object) -> None:
    clients = slow_clients(url, path)
    try:
        assert callable(answer_good)
        answer_good()  # served while the slow clients hold their sockets
        for name, client in clients.items():
            said = cut_off(client, f"the server cuts off the slow client ({name})")
            assert said.startswith(b"HTTP/1.1 408 "), (name, said)
        answer_good()
    finally:
        for client in clients.values():
            client.close()


def test_slow_clients_are_cut_off_while_others_are_served(server: Server) -> None:
    def answer_good() -> None:
        answer = httpx.post(f"{server.url}/invocations", content=GOOD, headers=JSON, timeout=30)
        assert answer.status_code == 200

    assert_slow_clients_are_cut_off(server.url, "/invocations", answer_good)


def test_a_body_above_the_limit_is_refused_before_it_is_read(server: Server) -> None:
    with connect(server.url) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        status, body = read_answer(sock)  # answered with no byte of the body sent
    assert status == 413 and b"above the limit" in body


# --- through the endpoint host ----------------------------------------------------------------


@pytest.fixture
def gateway(toy: Toy, monkeypatch: pytest.MonkeyPatch) -> str:
    """The toy deployed to staging behind a host started with short read timeouts."""
    monkeypatch.setenv(HEADER_TIMEOUT_VARIABLE, READ_TIMEOUT_S)
    monkeypatch.setenv(BODY_TIMEOUT_VARIABLE, READ_TIMEOUT_S)
    toy.version(test=False)
    url: str = toy.deployed("--skip-tests")["gateway_url"]
    return url


def host_of(gateway: str) -> str:
    return gateway.split("/endpoints/")[0]


@pytest.mark.slow
def test_the_host_refuses_hostile_requests_and_keeps_serving(gateway: str) -> None:
    """One deployed host for the three: control characters, the body limit, slow clients."""
    refuses_control_characters_in_paths(gateway)
    holds_the_body_limit_as_the_body_streams(gateway)

    def answer_good() -> None:
        answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON, timeout=30)
        assert prediction(answer) == 3.5

    assert_slow_clients_are_cut_off(
        host_of(gateway), "/endpoints/toy-staging/invocations", answer_good
    )


def refuses_control_characters_in_paths(gateway: str) -> None:
    host = host_of(gateway)
    requests = {
        "crlf-in-action": b"GET /endpoints/toy-staging/ping%0d%0ax-injected:%201 HTTP/1.1",
        "crlf-in-endpoint": b"POST /endpoints/toy-staging%0D%0A/invocations HTTP/1.1",
        "tab": b"GET /endpoints/toy-staging/metadata%09 HTTP/1.1",
        "nul": b"GET /endpoints/toy-staging/ping%00 HTTP/1.1",
        "del": b"GET /endpoints/toy-staging/ping%7f HTTP/1.1",
        "raw-control-character": b"GET /endpoints/toy-staging/pi\x01ng HTTP/1.1",
        "raw-cr": b"GET /endpoints/toy-staging/ping\rx HTTP/1.1",
    }
    for name, line in requests.items():
        status, body = exchange(host, line + b"\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        assert status == 400, (name, body)
        if name == "crlf-in-endpoint":
            assert b"not a valid endpoint name" in body, body
        elif b"%" in line:  # decoded by the server, refused by the host itself
            assert b"control characters" in body, (name, body)
        answer = httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)
        assert prediction(answer) == 3.5, name
    answer = httpx.get(f"{gateway}/metadata")
    assert answer.status_code == 200 and answer.json()["endpoint"] == "toy-staging"


def holds_the_body_limit_as_the_body_streams(gateway: str) -> None:
    host = host_of(gateway)
    head = (
        b"POST /endpoints/toy-staging/invocations HTTP/1.1\r\n"
        b"host: x\r\ncontent-type: application/json\r\n"
    )
    with connect(host) as sock:  # declared too large: answered before a byte of it is sent
        sock.sendall(head + f"content-length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        status, body = read_answer(sock)
    assert status == 413 and f"limit of {MAX_BODY_BYTES}".encode() in body
    with connect(host) as sock:  # no length declared: refused once it passes the limit
        sock.sendall(head + b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        chunks = math.ceil(MAX_BODY_BYTES / len(chunk)) + 64
        send_until_answered(sock, chunks, b"10000\r\n" + chunk + b"\r\n")
        status, body = read_answer(sock)
    assert status == 413 and b"above the limit" in body
    assert prediction(httpx.post(f"{gateway}/invocations", content=ROW, headers=JSON)) == 3.5
