"""Recording golden outputs: a version's real serving handler answers a deterministic choice of
test rows, and the answers become the model's golden file."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from modelci.errors import ConfigError
from modelci.progress import Progress
from modelci.workspace import Workspace


@dataclass(frozen=True)
class Recorded:
    """What `record_golden` wrote: the file (from the repository root), its rows, and whether
    the spec names it (`[tests] golden`); a file the spec does not name is used when present."""

    model: str
    version: str
    path: str
    rows: int
    declared: bool
    relative: str
    spec_file: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "path": self.path, "rows": self.rows}


def record_golden(
    workspace: Workspace,
    model: str,
    rows: int = 5,
    version: str | None = None,
    progress: Progress | None = None,
) -> Recorded:
    """Write `model`'s golden file from the version's (default: the newest ready one) serving
    handler over `rows` test rows, chosen by the seed and the sample key (the same rows on every
    machine). Raises ConfigError when the model has no CSV test channel in the repository or
    the handler refuses a row."""
    from modelci.envs.uv import ensure_environment
    from modelci.runtime.signature import LABEL_COLUMNS
    from modelci.spec import find_model
    from modelci.testing.golden import decode_answer
    from modelci.testing.probe import probe
    from modelci.testing.runner import DEFAULT_GOLDEN, choose_version, model_dir

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
        record = choose_version(registry, spec.name, version)
    folder = model_dir(workspace, record)
    environment = ensure_environment(workspace.root, spec, progress=progress)
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
    return Recorded(
        model=spec.name,
        version=record.version,
        path=f"{spec.folder}/{relative}",
        rows=len(lines),
        declared=spec.file.tests.golden is not None,
        relative=relative,
        spec_file=str(spec.spec_file),
    )
