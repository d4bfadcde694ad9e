"""The check every deploy, promote, rollback and release makes of its version's artifact
before the pointer moves: a changed stored archive (or cached unpacked copy) is refused,
whatever --force says, and the refusal recorded."""

from __future__ import annotations

from modelci.errors import ModelciError
from modelci.registry.base import Event, Registry, VersionRecord
from modelci.workspace import Workspace


def check_artifact(
    workspace: Workspace, registry: Registry, record: VersionRecord, environment: str
) -> None:
    """Raise ArtifactCorrupted (or ArtifactNotFound) naming the version and the file, after
    recording a `deploy_refused` event with the reason."""
    from modelci.train.unpacked import verify_version

    try:
        verify_version(workspace, record)
    except ModelciError as error:
        registry.append_event(
            Event(
                kind="deploy_refused",
                model=record.model,
                version=record.version,
                environment=environment,
                commit=record.commit,
                actor=workspace.actor(),
                ci_url=workspace.ci_url(),
                details={"reasons": [error.render()]},
            )
        )
        raise
