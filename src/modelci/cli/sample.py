"""`modelci sample`: write a channel's deterministic sample."""

from __future__ import annotations

from pathlib import Path

import click

from modelci.cli import json_option
from modelci.console import Output
from modelci.errors import ConfigError
from modelci.workspace import Workspace


@click.command()
@click.argument("model")
@click.option("--channel", required=True, help="The channel of [train].channels to sample.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write it (default: .modelci/samples/MODEL/CHANNEL).",
)
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Override [train].sample.fraction.",
)
@json_option
@click.pass_obj
def sample(
    workspace: Workspace,
    model: str,
    channel: str,
    out: Path | None,
    fraction: float | None,
    json_mode: bool,
) -> None:
    """Write the deterministic sample of MODEL's CHANNEL: the same rows on every run and
    machine, chosen by a hash of the [train].sample key (or the row) with the model's seed."""
    from modelci.spec import find_model
    from modelci.testing.sampling import sample_channel

    output = Output(json_mode)
    spec = find_model(workspace.models, model)
    channels = spec.train.channels
    if channel not in channels:
        raise ConfigError(
            f"model {model!r} has no channel {channel!r} (channels: "
            f"{', '.join(channels) or 'none'})",
            file=spec.spec_file,
            key="train.channels",
        )
    source = workspace.root / channels[channel]
    if not source.exists():
        raise ConfigError(
            f"{channels[channel]!r} does not exist",
            file=spec.spec_file,
            key=f"train.channels.{channel}",
        )
    settings = spec.train.sample
    chosen = fraction if fraction is not None else (settings.fraction if settings else None)
    if chosen is None:
        raise ConfigError(
            "no [train].sample fraction is set: add one or pass --fraction",
            file=spec.spec_file,
            key="train.sample",
        )
    key = settings.key if settings else None
    if out is None:
        out = workspace.state_dir / "samples" / spec.name / channel
        if source.is_file():
            out = out / source.name
    results = sample_channel(source, out, fraction=chosen, key=key, seed=spec.train.seed)
    report = {
        "model": spec.name,
        "channel": channel,
        "fraction": chosen,
        "key": key,
        "seed": spec.train.seed,
        "out": str(out),
        "files": [
            {
                "source": str(r.source.relative_to(workspace.root)),
                "out": str(r.destination),
                "rows": r.rows,
                "kept": r.kept,
            }
            for r in results
        ],
    }

    def render(console: object) -> None:
        for r in results:
            output.out.print(f"{r.destination}: kept {r.kept} of {r.rows} rows")

    output.result(report, render)
