"""The smoke request a deploy sends once its version serves: one row the model has seen."""

from __future__ import annotations

import csv

from modelci.spec import ModelSpec
from modelci.workspace import Workspace


def smoke_request(workspace: Workspace, spec: ModelSpec) -> tuple[bytes, str] | None:
    """The first golden row, else the first row of the test channel (key and label left out)."""
    from modelci.runtime.signature import LABEL_COLUMNS
    from modelci.testing.golden import encode_input, read_golden
    from modelci.testing.runner import golden_path

    found = golden_path(spec, workspace.root)
    if found is not None and found[0].exists():
        rows = read_golden(*found)
        if rows:
            return encode_input(rows[0].input, rows[0].content_type), rows[0].content_type
    channel = next((c for c in ("test", "validation", "train") if c in spec.train.channels), None)
    if channel is None or "://" in spec.train.channels[channel]:
        return None
    source = workspace.root / spec.train.channels[channel]
    files = [source] if source.is_file() else sorted(source.rglob("*.csv"))
    if not files or not files[0].is_file() or files[0].suffix != ".csv":
        return None
    with files[0].open(newline="") as handle:
        reader = csv.reader(handle)
        header, row = next(reader, None), next(reader, None)
    if header is None or row is None:
        return None
    drop = {
        *LABEL_COLUMNS,
        *([spec.train.sample.key] if spec.train.sample and spec.train.sample.key else []),
    }
    values = [value for name, value in zip(header, row, strict=False) if name not in drop]
    return (",".join(values) + "\n").encode(), "text/csv"
