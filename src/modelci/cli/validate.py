"""`modelci validate`: check modelci.toml and every model.toml."""

from __future__ import annotations

from typing import Any

import click

from modelci.cli import json_option
from modelci.console import Output, escape
from modelci.errors import ConfigError
from modelci.settings import PROJECT_FILE, glob_regex
from modelci.workspace import Workspace, loose_name


@click.command()
@json_option
@click.pass_obj
def validate(workspace: Workspace, json_mode: bool) -> None:
    """Check every spec. Exit 0 when all are valid; 1 when a model's spec is bad (its row
    names the file and key at fault; the other models are still checked), as `run` and
    `release` fail that model only; 2 when modelci.toml is bad or missing."""
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
    rows: list[dict[str, Any]] = [
        {"model": m.name, "path": m.folder, "status": "valid", "error": None} for m in models
    ]
    for error in errors:
        spec_file = error.file or ""
        rows.append(
            {
                "model": loose_name(workspace.root, spec_file) if spec_file else None,
                "path": spec_file.rpartition("/")[0] or None,
                "status": "failed",
                "error": error.to_json(),
            }
        )
    rows.sort(key=lambda row: row["path"] or "")
    warnings = spec_warnings(models, files)
    for pattern in project.project.shared:
        regex = glob_regex(pattern)
        if not any(regex.fullmatch(f) for f in files):
            warnings.append(f"modelci.toml: project.shared: {pattern!r} matches no file")
    if not json_mode:
        for warning in warnings:
            output.warn(warning)
    result = {"ok": not errors, "models": rows, "warnings": warnings}

    def render(console: object) -> None:
        valid = [row["model"] for row in rows if row["status"] == "valid"]
        summary = f"{len(valid)} of {len(rows)} model(s)" if errors else f"{len(rows)} model(s)"
        output.out.print(f"[green]valid[/]: {summary}: {escape(', '.join(valid) or 'none')}")
        for row in rows:
            if row["status"] == "failed":
                output.out.print(f"[red]failed[/]: {escape(str(row['model']))} ({row['path']})")
        for error in errors:
            output.err.print(f"[bold red]error:[/] {escape(error.render())}")

    output.result(result, render)
    if errors:
        raise click.exceptions.Exit(1)
