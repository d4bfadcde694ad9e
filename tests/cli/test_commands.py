"""The CLI's conventions: every command of the design, --help, --json, exit codes, -C."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from modelci import __version__
from modelci.cli import COMMANDS
from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]

DESIGN_COMMANDS = (
    "changed",
    "validate",
    "build",
    "base-image",
    "train",
    "test",
    "deploy",
    "undeploy",
    "promote",
    "rollback",
    "alias",
    "approve",
    "status",
    "history",
    "run",
    "release",
    "serve",
    "invoke",
    "sample",
    "golden",
    "registry",
    "ci-config",
    "init",
    "ui",
    "report",
    "capture",
    "drift",
    "shadow",
)


def test_every_design_command_exists_with_help(modelci: Run) -> None:
    assert set(DESIGN_COMMANDS) == set(COMMANDS)
    top = modelci("--help")
    assert top.code == 0
    for name in DESIGN_COMMANDS:
        assert name in top.stdout
        result = modelci(name, "--help")
        assert result.code == 0, (name, result.stderr)
        assert "Usage: modelci " + name in result.stdout


def test_version(modelci: Run) -> None:
    result = modelci("--version")
    assert result.code == 0
    assert result.stdout.strip() == f"modelci {__version__}"


def test_unknown_command_and_option_are_usage_errors(modelci: Run) -> None:
    assert modelci("deploi").code == 2
    result = modelci("changed", "--bogus", "--json")
    assert result.code == 2
    assert "--bogus" in result.json()["error"]["message"]


def test_outside_a_repository(modelci: Run, tmp_path: Path) -> None:
    result = modelci("-C", tmp_path, "changed", "--json")
    assert result.code == 2
    assert "not inside a git repository" in result.json()["error"]["message"]
    missing = modelci("-C", tmp_path / "nope", "status")
    assert missing.code == 2


def test_json_is_one_document_and_progress_goes_to_stderr(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    for args in (["validate"], ["changed"], ["status"]):
        result = modelci("-C", repo.root, *args, "--json")
        assert result.code == 0, result.stderr
        json.loads(result.stdout)  # exactly one document: a second would not parse
        assert result.stdout.count("\n") == 1


def test_init_writes_a_valid_starter_and_never_overwrites(modelci: Run, tmp_path: Path) -> None:
    target = tmp_path / "starter"
    first = modelci("init", target, "--json")
    assert first.code == 0
    written = first.json()["written"]
    assert "models/example/model.toml" in written and "models/example/train.py" in written
    assert first.json()["git_initialised"] is True

    assert modelci("-C", target, "validate").code == 0

    spec = target / "models/example/model.toml"
    spec.write_text(spec.read_text() + "# mine\n")
    again = modelci("init", target, "--json")
    assert again.code == 0
    assert again.json()["written"] == []
    assert "models/example/model.toml" in again.json()["kept"]
    assert spec.read_text().endswith("# mine\n")


def test_init_rejects_a_bad_model_name(modelci: Run, tmp_path: Path) -> None:
    result = modelci("init", tmp_path / "x", "--model", "Bad_Name", "--json")
    assert result.code == 2
    assert result.json()["error"]["key"] == "--model"
    assert not (tmp_path / "x").exists()


def test_status_without_a_registry_lists_models_and_creates_nothing(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "status", "--json")
    assert result.code == 0
    assert result.json() == {
        "models": [
            {
                "model": "churn",
                "environments": {"staging": None, "production": None},
                "latest": None,
                "retired": False,
            },
            {
                "model": "price",
                "environments": {"staging": None, "production": None},
                "latest": None,
                "retired": False,
            },
        ],
        "warnings": [],
    }
    assert not (repo.root / ".modelci" / "registry.db").exists()


def test_history_of_an_unknown_model(git_repo: Callable[..., GitRepo], modelci: Run) -> None:
    repo = git_repo(examples=True)
    result = modelci("-C", repo.root, "history", "chrun", "--json")
    assert result.code == 2
    message = result.json()["error"]["message"]
    assert "did you mean 'churn'?" in message and "known models: churn, price" in message


def test_the_installed_script_exits_with_the_error_code(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "modelci"
    done = subprocess.run([script, "-C", tmp_path, "validate"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stdout == ""


def test_the_installed_script_prints_its_json_through_a_pipe(tmp_path: Path) -> None:
    """The script skips the interpreter's teardown: its output must still be flushed."""
    script = Path(sys.executable).parent / "modelci"
    done = subprocess.run(
        [script, "-C", tmp_path, "validate", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["ok"] is False


def test_leaving_runs_atexit_handlers_and_waits_for_running_threads() -> None:
    code = (
        "import atexit, threading\n"
        "from modelci.cli import leave\n"
        "atexit.register(print, 'atexit ran')\n"
        "threading.Timer(0.2, print, ['thread finished']).start()\n"
        "print('buffered', end='')\n"
        "leave(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout.startswith("buffered")
    assert "atexit ran" in done.stdout and "thread finished" in done.stdout


def test_leaving_without_threads_exits_at_once_with_the_code() -> None:
    code = (
        "import atexit\n"
        "from modelci.cli import leave\n"
        "atexit.register(print, 'atexit ran')\n"
        "print('buffered', end='')\n"
        "leave(4)\n"
        "print('never')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (4, "bufferedatexit ran\n")


def test_help_and_changed_stay_lean() -> None:
    """`--help` and `changed` must not load pydantic, SQLAlchemy or rich (start-up cost)."""
    code = (
        "import sys\n"
        "from modelci.cli import main\n"
        "try:\n    main(['changed', '--help'])\nexcept SystemExit:\n    pass\n"
        "import modelci.changes\n"
        "print(sorted(m for m in ('pydantic', 'sqlalchemy', 'rich', 'alembic') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_changed_on_validated_specs_loads_no_pydantic(git_repo: Callable[..., GitRepo]) -> None:
    """`changed` reads specs validated before from the spec cache: once every model.toml blob
    and modelci.toml has been validated, it runs without pydantic (a miss validates, once)."""
    repo = git_repo(examples=True)
    code = (
        "import json, sys\n"
        "from modelci.cli import run\n"
        f"code = run(['-C', {str(repo.root)!r}, 'changed', '--json'])\n"
        "print(json.dumps([code, sorted(m for m in ('pydantic', 'sqlalchemy') "
        "if m in sys.modules)]))\n"
    )

    def changed_in_a_new_process() -> tuple[dict[str, object], list[object]]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        *document, loaded = done.stdout.strip().splitlines()
        return json.loads("\n".join(document)), json.loads(loaded)

    first, first_loaded = changed_in_a_new_process()
    assert first_loaded == [0, ["pydantic"]]  # a miss: spec.py validated every spec
    second, second_loaded = changed_in_a_new_process()
    assert second_loaded == [0, []] and second == first
