"""The health check of a deploy: the backend serves the version healthily, and then the smoke
request (one row the model has seen) answers."""

from __future__ import annotations

import csv

from modelci.deploy.base import Deployer, Served, Superseded
from modelci.errors import DeployFailed
from modelci.spec import ModelSpec
from modelci.workspace import Workspace

HEALTH_TIMEOUT_S = 180.0  # how long a deploy waits for its version to serve healthily


def check_serving(
    workspace: Workspace,
    deployer: Deployer,
    spec: ModelSpec | None,
    endpoint: str,
    version: str,
    timeout: float,
    superseded: Superseded | None,
) -> Served:
    """Wait until the backend serves `version` at `endpoint` healthily, then send the smoke
    request (none without `spec`). Raises DeployFailed, or DeploySuperseded as soon as
    `superseded` names another version."""
    served = deployer.apply(endpoint, version, timeout, superseded)
    # a backend whose hosts send it before routing to the version has tested it already
    smoke = (
        smoke_request(workspace, spec) if spec is not None and not deployer.smoke_tested else None
    )
    if smoke is not None:
        answer = deployer.invoke(endpoint, smoke[0], smoke[1])
        if not 200 <= answer.status < 300:
            raise DeployFailed(
                f"the smoke request got {answer.status}: "
                f"{answer.body[:300].decode(errors='replace')}"
            )
    return served


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
