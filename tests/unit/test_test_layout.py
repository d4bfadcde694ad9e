"""The test suite's own layout: a test module imports no other test module (conftest files
included); what tests share lives in tests/support."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED = "tests.support"


def foreign_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each import of a test module other than tests.support, relative
    imports included (the suite has no package-relative imports to make)."""
    wrong: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        for name in names:
            shared = name == SHARED or name.startswith(f"{SHARED}.")
            if name.startswith(".") or (
                (name == "tests" or name.startswith("tests.")) and not shared
            ):
                wrong.append((node.lineno, name))
    return wrong


def test_no_test_module_imports_another() -> None:
    wrong = [
        f"{path.relative_to(TESTS.parent)}:{line}: imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in foreign_imports(path.read_text())
    ]
    assert not wrong, "move what tests share into tests/support:\n" + "\n".join(wrong)


def test_the_scan_sees_every_kind_of_import() -> None:
    source = (
        "import tests.unit.test_envs\n"
        "from tests.integration import conftest\n"
        "from tests.conftest import CliResult\n"
        "from . import test_envs\n"
        "from tests.support.repos import GitRepo\n"
        "import tests.support, json\n"
        "def f():\n"
        "    from tests.cli.test_status import x\n"
    )
    assert [line for line, _ in foreign_imports(source)] == [1, 2, 3, 4, 8]
