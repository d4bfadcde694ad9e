"""A training script run as `python train.py ARGS` runs it, and then, in the same process, the
record of the trained model's input signature (`modelci.runtime.introspection`): the libraries
the script imported to train are those that load the model, so the record costs only the
model's load and a few predicts, where a process of its own would import them all again.

`python <runtime>/modelci/runtime/scriptmode.py PLAN ENTRYPOINT [ARGS...]`, in the job's code
folder, where PLAN is JSON: `{"introspection": [its arguments], "report": "<path>"}`.

The script sees what `python ENTRYPOINT ARGS` gives it: `sys.argv`, `sys.path[0]` (its own
folder), `__name__ == "__main__"`, its exit code and its traceback. modelci's runtime goes on
`sys.path` only once the script has ended. The record is attempted only when the script ended
with exit code 0; the report then says `started`, then `recorded`, or `failed` with the error.
The parent records the signature in a process of its own when there is no report (the script
ended its process itself) or it still says `started` (the record crashed the process).
Whatever happens in the record, the process exits with the script's exit code.

Runs with the standard library only until the script has ended.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # run as a file: its folder (`modelci/runtime/`) is sys.path[0],
    del sys.path[0]  # and must shadow nothing the script imports

import builtins
import contextlib
import importlib.machinery
import io
import json
import os
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUNTIME_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `modelci/`
# the report's states: the script ended with 0 and the record began; then how the record went
REPORT_STARTED, REPORT_RECORDED, REPORT_FAILED = "started", "recorded", "failed"


def _write_report(path: str, report: dict[str, Any]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(report, stream)
    os.replace(temporary, path)


def _print_traceback(error: BaseException) -> None:
    """The traceback as `python script.py` prints it: from the script's own frame."""
    trace = error.__traceback__
    while trace is not None and trace.tb_frame.f_code.co_filename == __file__:
        trace = trace.tb_next
    traceback.print_exception(type(error), error, trace)


def _main_module(path: str) -> types.ModuleType:
    """A `__main__` module for the script at `path`, as `python path` makes it."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    vars(module).update(__builtins__=builtins, __annotations__={}, __cached__=None)
    return module


def run_script(entrypoint: str, arguments: list[str]) -> int:
    """Run the script as `python entrypoint arguments` would; its exit code."""
    path = os.path.realpath(entrypoint)
    sys.argv = [entrypoint, *arguments]
    sys.path.insert(0, os.path.dirname(path))
    try:
        with io.open_code(path) as stream:
            code = compile(stream.read(), path, "exec", dont_inherit=True)
        module = _main_module(path)
        sys.modules["__main__"] = module
        exec(code, vars(module))
    except SystemExit as stop:
        if stop.code is None or stop.code == 0:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # printed, and exit code 1, as Python does
        _print_traceback(error)
        return 1
    return 0


@contextlib.contextmanager
def _library_defaults() -> Iterator[None]:
    """The settings the script may have changed that would change the record's answers, as a
    fresh process has them: NaN checks on in scikit-learn, NumPy's floating-point errors not
    raised."""
    with contextlib.ExitStack() as stack:
        if "numpy" in sys.modules:
            numpy = sys.modules["numpy"]
            stack.enter_context(
                numpy.errstate(divide="warn", over="warn", under="ignore", invalid="warn")
            )
        if "sklearn" in sys.modules:
            sklearn = sys.modules["sklearn"]
            stack.enter_context(sklearn.config_context(assume_finite=False))
        yield


def record_signature(plan: dict[str, Any]) -> None:
    """Record the signature as `python -m modelci.runtime.introspection` would; the report
    says how it went."""
    report = str(plan["report"])
    _write_report(report, {"state": REPORT_STARTED})
    try:
        sys.path.insert(0, RUNTIME_ROOT)
        from modelci.runtime.introspection import record

        with _library_defaults():
            record([str(argument) for argument in plan["introspection"]])
    except Exception as error:  # the version is served without a signature, as before
        _write_report(report, {"state": REPORT_FAILED, "error": f"{type(error).__name__}: {error}"})
        return
    _write_report(report, {"state": REPORT_RECORDED})


def main(argv: list[str]) -> int:
    """Run the script, then record the signature if it succeeded."""
    plan, entrypoint, arguments = json.loads(argv[0]), argv[1], argv[2:]
    code = run_script(entrypoint, arguments)
    if code == 0:
        sys.stdout.flush()
        record_signature(plan)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
