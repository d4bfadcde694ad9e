"""The import picture has arrows only from commands to library to backends: read from the
source with `ast`, so a lazy import inside a function counts as much as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "modelci"

# Modules that implement one backend behind a base class.
BACKENDS = {
    "modelci.store.local",
    "modelci.store.s3",
    "modelci.store.oci",
    "modelci.registry.sql",
    "modelci.registry.engine",
    "modelci.registry.rows",
    "modelci.deploy.local",
    "modelci.deploy.host",
    "modelci.deploy.ray",
    "modelci.deploy.sagemaker",
    "modelci.train.local",
    "modelci.train.ray",
    "modelci.train.sagemaker",
}
# The library's orchestration, which drives backends: no backend may call back into it.
ORCHESTRATION = (
    "modelci.pipeline",
    "modelci.status",
    "modelci.train.runner",
    "modelci.testing.runner",
    "modelci.deploy.rollout",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every modelci module `path` imports, at any depth of its code."""
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (package or module_name(path)).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "modelci" or name.startswith("modelci.")}


def modules() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_only_commands_import_commands() -> None:
    offenders = {
        name: sorted(i for i in imported if i.startswith("modelci.cli"))
        for name, imported in modules().items()
        if not name.startswith("modelci.cli") and name != "modelci.__main__"
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_backends_never_call_back_into_orchestration() -> None:
    table = modules()
    assert set(table) >= BACKENDS, "a backend module was renamed: update BACKENDS"
    offenders = {
        name: sorted(i for i in table[name] if i.startswith(ORCHESTRATION)) for name in BACKENDS
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_runtime_imports_only_itself() -> None:
    offenders = {
        name: sorted(i for i in imported if i != "modelci" and not i.startswith("modelci.runtime"))
        for name, imported in modules().items()
        if name.startswith("modelci.runtime")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
