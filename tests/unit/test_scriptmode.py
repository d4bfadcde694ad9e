"""A training script run by `modelci.runtime.scriptmode` behaves as under `python train.py`, and
the same process then records the model's signature. Real interpreter processes, the runtime's
copy as modelci puts it beside a model's environment, and real scikit-learn models."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelci.envs.runtime_copy import copy_runtime
from modelci.runtime.signature import SIGNATURE_FILE

# a scikit-learn model over three named columns, refusing NaN; the script leaves settings
# behind that would change a probe's answers if the record inherited them
SKLEARN_SCRIPT = """\
import os, sys
import numpy as np
import pandas as pd
import sklearn
from joblib import dump
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
dump(model, os.path.join(sys.argv[1], "model.joblib"))
sklearn.set_config(assume_finite=True)  # NaN would pass unchecked
np.seterr(all="raise")
print("trained")
"""


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_runtime(tmp_path_factory.mktemp("runtime")) / "modelci/runtime/scriptmode.py"


def run(
    wrapper: Path, code: Path, script: str, *arguments: str, model: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `script` (written to code/train.py) through the wrapper, in `code`; the finished
    process and the report's path."""
    code.mkdir(parents=True, exist_ok=True)
    (code / "train.py").write_text(script)
    model = model or code.parent / "model"
    model.mkdir(parents=True, exist_ok=True)
    report = code.parent / "report.json"
    plan = json.dumps({"introspection": ["--model-dir", str(model)], "report": str(report)})
    done = subprocess.run(
        [sys.executable, str(wrapper), plan, "train.py", *arguments],
        cwd=code,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, report


def report_of(report: Path) -> dict[str, Any] | None:
    return json.loads(report.read_text()) if report.exists() else None


def test_the_script_sees_what_python_script_gives_it(wrapper: Path, tmp_path: Path) -> None:
    script = """\
import json, os, sys
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "name": __name__,
                  "file": __file__, "modelci": "modelci" in sys.modules,
                  "runtime_on_path": any("runtime" in p for p in sys.path)}))
"""
    code = tmp_path / "code"
    done, report = run(wrapper, code, script, "--C", "0.5")
    (code / "direct.py").write_text(script)
    direct = subprocess.run(
        [sys.executable, "train.py", "--C", "0.5"], cwd=code, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[0])
    expected = json.loads(direct.stdout)
    assert seen == expected
    assert seen["argv"] == ["train.py", "--C", "0.5"] and seen["name"] == "__main__"
    assert seen["path0"] == str(code) and seen["file"] == str(code / "train.py")
    assert seen["modelci"] is False and seen["runtime_on_path"] is False
    # the script succeeded: the record ran (a model folder without a model fails it)
    assert report_of(report) == {
        "state": "failed",
        "error": report_of(report)["error"],  # type: ignore[index]
    }
    assert "no handler fits" in report_of(report)["error"]  # type: ignore[index]


def test_multiprocessing_children_of_the_script_work_as_under_python(
    wrapper: Path, tmp_path: Path
) -> None:
    """`spawn` children import the script again by its path, as `__mp_main__`."""
    script = """\
import multiprocessing as mp

def square(x):
    return x * x

if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        print(sum(pool.map(square, range(10))))
"""
    done, report = run(wrapper, tmp_path / "code", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "285\n"
    assert report_of(report) is not None  # the record ran after the pool had ended


@pytest.mark.parametrize(
    ("ending", "code", "stderr"),
    [
        ("sys.exit(3)", 3, ""),
        ("sys.exit('no data in the channel')", 1, "no data in the channel\n"),
        ("raise ValueError('bad row 7')", 1, "ValueError: bad row 7\n"),
    ],
)
def test_a_failing_script_keeps_its_exit_code_and_traceback_and_records_nothing(
    wrapper: Path, tmp_path: Path, ending: str, code: int, stderr: str
) -> None:
    script = f"import sys\n\ndef main():\n    {ending}\n\nmain()\n"
    done, report = run(wrapper, tmp_path / "code", script)
    direct = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path / "code", capture_output=True, text=True
    )
    assert done.returncode == direct.returncode == code
    assert done.stderr.endswith(stderr)
    # the traceback is the script's own, as `python train.py` prints it
    assert done.stderr == direct.stderr
    assert "runpy" not in done.stderr and "scriptmode" not in done.stderr
    assert report_of(report) is None


def test_a_script_that_ends_its_own_process_leaves_no_report(wrapper: Path, tmp_path: Path) -> None:
    done, report = run(
        wrapper, tmp_path / "code", "import os\nprint('done', flush=True)\nos._exit(0)\n"
    )
    assert done.returncode == 0 and done.stdout == "done\n"
    assert report_of(report) is None  # the parent records the signature in a process of its own


def test_the_record_is_a_fresh_processs_record(wrapper: Path, tmp_path: Path) -> None:
    """Settings the script changed (scikit-learn's NaN checks off, NumPy raising on every
    floating-point error) do not reach the record: it says what a process of its own says."""
    model = tmp_path / "model"
    done, report = run(wrapper, tmp_path / "code", SKLEARN_SCRIPT, str(model), model=model)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "trained\n"  # the record prints nothing into the training log
    assert report_of(report) == {"state": "recorded"}
    in_job = json.loads((model / SIGNATURE_FILE).read_text())
    apart = tmp_path / "apart"
    apart.mkdir()
    (apart / "model.joblib").write_bytes((model / "model.joblib").read_bytes())
    subprocess.run(
        [sys.executable, "-m", "modelci.runtime.introspection", "--model-dir", str(apart)],
        check=True,
        capture_output=True,
    )
    assert in_job == json.loads((apart / SIGNATURE_FILE).read_text())
    assert [(c["name"], c["nan"], c["infinity"]) for c in in_job["columns"]] == [
        ("a", False, False),
        ("b", False, False),
        ("c", False, False),
    ]


def test_a_crash_in_the_record_leaves_the_report_started(wrapper: Path, tmp_path: Path) -> None:
    """A real SIGSEGV while the model loads for the record: the script had ended with 0, and
    the report says so (RunningJob then counts the job as succeeded and records apart)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "inference.py").write_text(
        "import os, signal\n\ndef model_fn(model_dir):\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    done, report = run(wrapper, tmp_path / "code", "print('trained')\n", model=model)
    assert done.returncode == -signal.SIGSEGV
    assert done.stdout == "trained\n"
    assert report_of(report) == {"state": "started"}
