"""`modelci capture`: list, print or fetch what an endpoint captured (`[serve.capture]`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.command()
@click.argument("model")
@click.option("--env", "environment", required=True, help="The environment whose endpoint.")
@click.option("--since", help="From this time on: 30m, 2h, 7d, or 2026-12-03T01:00:00Z.")
@click.option("--version", help="Only this version's captures.")
@click.option("--records", is_flag=True, help="Print the records (one JSON line each).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy the capture files into this folder.",
)
@json_option
@click.pass_obj
def capture(
    workspace: Workspace,
    model: str,
    environment: str,
    since: str | None,
    version: str | None,
    records: bool,
    output: Path | None,
    json_mode: bool,
) -> None:
    """List the capture files of MODEL's endpoint in ENV (SageMaker's data-capture format,
    `capture/<endpoint>/<version>/yyyy/mm/dd/hh/<uuid>.jsonl` in the store; on the sagemaker
    deploy backend, those SageMaker writes under `[sagemaker] bucket`,
    `capture/<endpoint>/<variant>/...`), print their records, or copy them into a folder."""
    from modelci.monitor.captured import fetch_files, parse_since
    from modelci.monitor.sources import capture_source

    if environment not in workspace.environments:
        known = ", ".join(workspace.environments)
        raise ConfigError(f"unknown environment {environment!r} (environments: {known})")
    out = Output(json_mode)
    moment = parse_since(since) if since else None
    endpoint = workspace.endpoint(model, environment)
    source = capture_source(workspace, model, environment)  # the host's, or SageMaker's
    files = source.files(version, moment)
    found = source.records(files, version, moment) if records else []
    written = fetch_files(source.store, files, output) if output is not None else []
    listed = [source.file_json(f) for f in files]
    document = {
        "endpoint": endpoint,
        "files": listed,
        **({"records": found} if records else {}),
        **({"written": [str(p) for p in written]} if output is not None else {}),
    }

    def render(console: object) -> None:
        if records:
            for record in found:
                click.echo(json.dumps(record, separators=(",", ":")))
            return
        for item in listed:
            out.out.print(f"{item['hour']}  {item['version'] or '-'}  {item['name']}")
        out.info(f"{endpoint}: {len(files)} capture file(s)")
        if output is not None:
            out.info(f"copied into {output}")

    out.result(document, render)
