"""`modelci.runtime` runs in the model's own environment, copied there alone: every module of it
imports with only the copy on PYTHONPATH, none reaches the rest of modelci, and the server
loads no part of modelci's CLI stack."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelci.envs.runtime_copy import copy_runtime
from tests.support.churn import train_churn_model

SRC = Path(__file__).resolve().parents[2] / "src"
FORBIDDEN = {"pydantic", "click", "rich", "sqlalchemy", "alembic", "httpx", "pandas", "yaml"}

WALK = """
import importlib, json, pkgutil, sys
import modelci.runtime
names = ["modelci.runtime"] + sorted(
    info.name for info in pkgutil.walk_packages(modelci.runtime.__path__, "modelci.runtime.")
)
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{type(error).__name__}: {error}"
ours = {
    name: getattr(module, "__file__", None)
    for name, module in sys.modules.items()
    if name.partition(".")[0] == "modelci"
}
print(json.dumps({"names": names, "failed": failed, "ours": ours}))
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime as modelci copies it into an environment: the PYTHONPATH entry."""
    return copy_runtime(tmp_path_factory.mktemp("runtime"))


def run_alone(code: str, runtime: Path) -> str:
    """Run `code` in a fresh interpreter of this venv (for Starlette, NumPy...) whose only
    PYTHONPATH entry is the copied runtime; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={"PYTHONPATH": str(runtime), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def imported_after(code: str, runtime: Path) -> set[str]:
    """The modules loaded by running `code` with only the copied runtime on PYTHONPATH."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    return set(json.loads(run_alone(script, runtime)))


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_the_copy_is_the_package_init_and_the_runtime_package(runtime: Path) -> None:
    copied = {p.relative_to(runtime).as_posix() for p in runtime.rglob("*") if p.is_file()}
    package = SRC / "modelci"
    expected = {"modelci/__init__.py"} | {
        p.relative_to(SRC).as_posix()
        for p in (package / "runtime").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert copied == expected


def test_every_runtime_module_imports_from_the_copy_alone(runtime: Path) -> None:
    walked = json.loads(run_alone(WALK, runtime))
    assert walked["failed"] == {}
    names = set(walked["names"])
    assert {"modelci.runtime.server", "modelci.runtime.training", "modelci.runtime.probe"} <= names
    assert {"modelci.runtime.ray_app", "modelci.runtime.ray_driver"} <= names
    ours: dict[str, str | None] = walked["ours"]
    # nothing of modelci beyond the package's __init__ and the runtime, all from the copy
    assert set(ours) <= {"modelci"} | names
    outside = {name: file for name, file in ours.items() if file is None}
    outside |= {
        name: file for name, file in ours.items() if file and runtime not in Path(file).parents
    }
    assert outside == {}


def test_importing_the_server_loads_no_cli_stack(runtime: Path) -> None:
    modules = imported_after(
        """
        import modelci.runtime.server
        from modelci.runtime.app import create_app
        from modelci.runtime.handlers import load_handler
        """,
        runtime,
    )
    assert {"starlette", "prometheus_client", "numpy"} <= top_level(modules)
    assert top_level(modules) & FORBIDDEN == set()
    ours = {name for name in modules if name.partition(".")[0] == "modelci"}
    assert "modelci.runtime.app" in ours
    assert {name for name in ours if not name.startswith("modelci.runtime.")} == {
        "modelci",
        "modelci.runtime",
    }


def test_serving_a_model_loads_nothing_beyond_what_the_model_needs(
    tmp_path_factory: pytest.TempPathFactory, runtime: Path
) -> None:
    model_dir = str(train_churn_model(tmp_path_factory))
    serving = imported_after(
        f"""
        from modelci.runtime.app import create_app
        app = create_app({model_dir!r})
        app.state.service.handler.predict_body(b"[" + b"0," * 19 + b"0]", "application/json")
        """,
        runtime,
    )
    model_alone = imported_after(
        f"import joblib; joblib.load({model_dir!r} + '/model.joblib')", runtime
    )
    assert "sklearn" in top_level(serving)  # the check sees the model's own imports
    assert top_level(serving - model_alone) & FORBIDDEN == set()
    assert all(
        name in {"modelci", "modelci.runtime"} or name.startswith("modelci.runtime.")
        for name in serving
        if name.partition(".")[0] == "modelci"
    )
