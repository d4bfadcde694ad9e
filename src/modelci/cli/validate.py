"""`modelci validate`: check modelci.toml and every model.toml."""

from __future__ import annotations

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.errors import ConfigError
from modelci.settings import PROJECT_FILE, glob_regex
from modelci.workspace import Workspace


@click.command()
@json_option
@click.pass_obj
def validate(workspace: Workspace, json_mode: bool) -> None:
    """Check every spec; exit 0 when all are valid, 2 naming each file and key at fault."""
    from modelci.spec import collect_models, spec_warnings

    output = Output(json_mode)
    if not (workspace.root / PROJECT_FILE).is_file():  # other commands run on the defaults
        raise ConfigError(
            f"no {PROJECT_FILE} in {workspace.root}: this is not a modelci repository yet; "
            "`modelci init` writes a starter one (an empty modelci.toml keeps the defaults)",
            file=PROJECT_FILE,
        )
    project = workspace.project
    files = workspace.files()
    models, errors = collect_models(workspace.root, project, files)
    if errors:
        for error in errors[1:]:
            output.warn(f"also: {error.render()}")
        raise errors[0]
    warnings = spec_warnings(models, files)
    for pattern in project.project.shared:
        regex = glob_regex(pattern)
        if not any(regex.fullmatch(f) for f in files):
            warnings.append(f"modelci.toml: project.shared: {pattern!r} matches no file")
    if not json_mode:
        for warning in warnings:
            output.warn(warning)
    result = {
        "ok": True,
        "models": [{"model": m.name, "path": m.folder} for m in models],
        "warnings": warnings,
    }

    def render(console: object) -> None:
        names = ", ".join(m.name for m in models) or "none"
        output.out.print(f"[green]valid[/]: {len(models)} model(s): {escape(names)}")

    output.result(result, render)
