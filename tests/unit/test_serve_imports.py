"""The server runs in the model's own environment: it must not import modelci's CLI stack."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.churn import train_churn_model

SRC = Path(__file__).resolve().parents[2] / "src"
FORBIDDEN = {"pydantic", "click", "rich", "sqlalchemy", "alembic", "httpx", "pandas", "yaml"}


def imported_after(code: str) -> set[str]:
    """The modules loaded by running `code` in a fresh interpreter with src/ on sys.path."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(result.stdout))


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_importing_the_server_loads_no_cli_stack() -> None:
    modules = imported_after(
        """
        import modelci.serve.__main__
        from modelci.serve import create_app, load_handler
        """
    )
    assert {"starlette", "prometheus_client", "numpy"} <= top_level(modules)
    assert top_level(modules) & FORBIDDEN == set()
    ours = {name for name in modules if name.partition(".")[0] == "modelci"}
    assert "modelci.serve.app" in ours
    assert {name for name in ours if not name.startswith("modelci.serve.")} == {
        "modelci",
        "modelci.serve",
    }


def test_serving_a_model_loads_nothing_beyond_what_the_model_needs(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    model_dir = str(train_churn_model(tmp_path_factory))
    serving = imported_after(
        f"""
        from modelci.serve import create_app
        app = create_app({model_dir!r})
        app.state.service.handler.predict_body(b"[" + b"0," * 19 + b"0]", "application/json")
        """
    )
    model_alone = imported_after(f"import joblib; joblib.load({model_dir!r} + '/model.joblib')")
    assert "sklearn" in top_level(serving)  # the check sees the model's own imports
    assert top_level(serving - model_alone) & FORBIDDEN == set()
    assert all(
        name in {"modelci", "modelci.serve"} or name.startswith("modelci.serve.")
        for name in serving
        if name.partition(".")[0] == "modelci"
    )
