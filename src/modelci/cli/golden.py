"""`modelci golden record`: write golden outputs from a version's real handler."""

from __future__ import annotations

import base64
import csv
import hashlib
import json

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.group()
def golden() -> None:
    """Golden outputs: fixed inputs with the outputs a version must keep giving."""


@golden.command()
@click.argument("model")
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many test rows to record.",
)
@click.option(
    "--version",
    "version",
    default=None,
    help="Record this version's answers (default: the newest ready one).",
)
@json_option
@click.pass_obj
def record(
    workspace: Workspace, model: str, rows: int, version: str | None, json_mode: bool
) -> None:
    """Write MODEL's golden file from the version's serving handler over a deterministic
    choice of test rows (the same rows on every machine)."""
    from modelci.envs.uv import ensure_environment
    from modelci.spec import find_model
    from modelci.testing.golden import decode_answer
    from modelci.testing.probe import probe
    from modelci.testing.repro import LABEL_COLUMNS
    from modelci.testing.runner import DEFAULT_GOLDEN, choose_version, model_dir

    output = Output(json_mode)
    spec = find_model(workspace.models, model)
    channel = next((c for c in ("test", "validation", "train") if c in spec.train.channels), None)
    if channel is None or "://" in spec.train.channels[channel]:
        raise ConfigError(
            "golden rows are taken from a test channel in the repository: add "
            "one to [train].channels",
            file=spec.spec_file,
            key="train.channels",
        )
    source = workspace.root / spec.train.channels[channel]
    files = [source] if source.is_file() else sorted(source.rglob("*.csv"))
    if not files or files[0].suffix != ".csv":
        raise ConfigError(
            f"{spec.train.channels[channel]!r} holds no CSV file",
            file=spec.spec_file,
            key=f"train.channels.{channel}",
        )
    key = spec.train.sample.key if spec.train.sample else None
    with files[0].open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        table = list(reader)
    drop = {*LABEL_COLUMNS, *([key] if key else [])}
    keep = [i for i, name in enumerate(header) if name not in drop]

    def rank(row: list[str]) -> bytes:
        value = row[header.index(key)] if key in header else ",".join(row)
        return hashlib.blake2b(f"{spec.train.seed}\0{value}".encode(), digest_size=8).digest()

    chosen = sorted(table, key=rank)[:rows]
    inputs = [[float(row[i]) for i in keep] for row in chosen]
    with workspace.registry() as registry:
        chosen_version = choose_version(registry, spec.name, version)
    folder = model_dir(workspace, chosen_version)
    environment = ensure_environment(workspace.root, spec, progress=output.info)
    handler = (
        str(workspace.root / spec.folder / spec.file.serve.handler)
        if spec.file.serve.handler
        else None
    )
    requests = [
        {
            "body_b64": base64.b64encode(json.dumps(values).encode()).decode(),
            "content_type": "application/json",
            "accept": "application/json",
        }
        for values in inputs
    ]
    [answers] = probe(
        str(environment.python),
        str(workspace.state_dir),
        [{"model_dir": str(folder), "handler": handler}],
        requests,
    )
    failed = [a for a in answers if a["status"] != 200]
    if failed:
        raise ConfigError(f"the handler refused a golden input: {failed[0]['error']}")
    relative = spec.file.tests.golden or DEFAULT_GOLDEN
    path = workspace.root / spec.folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"input": values, "output": decode_answer(answer)})
        for values, answer in zip(inputs, answers, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = {
        "model": spec.name,
        "version": chosen_version.version,
        "path": f"{spec.folder}/{relative}",
        "rows": len(lines),
    }
    if spec.file.tests.golden is None:
        output.warn(
            f'{spec.spec_file}: add `[tests] golden = "{relative}"` to make the '
            "golden file part of the spec (it is used when present)"
        )
    output.result(
        result,
        lambda console: console.print(
            f"wrote {len(lines)} golden rows from {chosen_version.version} to {result['path']}"
        ),
    )
