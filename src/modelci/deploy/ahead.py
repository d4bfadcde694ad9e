"""A spare server of the version `run` is about to train: the backend (the local host) starts
a process in the version's environment that loads its libraries while the job trains, so that
the deploy which follows a pass only loads the model instead of a whole cold start. Withdrawn
when the version fails. Only ever an acceleration: whatever goes wrong here, the deploy starts
the version itself."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelci.deploy.base import Deployer
    from modelci.spec import ModelSpec
    from modelci.workspace import Workspace


class Ahead:
    """One version's spare for its deploy to the first environment."""

    def __init__(self, deployer: Deployer, endpoint: str, model: str, environment: str):
        self.deployer = deployer
        self.endpoint, self.model, self.environment = endpoint, model, environment
        self.asked = False
        self.thread: threading.Thread | None = None

    def start(self, version: str, commit: str) -> None:
        """Ask the backend in the background: the training starts meanwhile."""

        def ask() -> None:
            self.asked = self.deployer.prepare(
                self.endpoint, self.model, self.environment, version, commit
            )

        self.thread = threading.Thread(target=ask, name=f"prepare-{self.endpoint}", daemon=True)
        self.thread.start()

    def withdraw(self) -> None:
        """The version is not to be deployed (it failed): stop its spare."""
        if self.thread is not None:
            self.thread.join()
        if self.asked:
            self.deployer.prepare(self.endpoint, self.model, self.environment, None, None)
            self.asked = False


def start_ahead(workspace: Workspace, spec: ModelSpec, version: str, commit: str) -> Ahead | None:
    """Start a spare of `version` for its deploy to the first environment when that deploy
    would start it at once (an all-at-once rollout; a canary's candidate is the rollout's).
    A backend whose settings are wrong gets none: its deploy step says what is wrong."""
    from modelci.deploy import open_deployer
    from modelci.errors import ModelciError
    from modelci.rolloutspec import rollout_for

    environment = workspace.environments[0]
    try:
        if rollout_for(workspace.project, spec, environment).strategy != "all_at_once":
            return None
        deployer = open_deployer(workspace)
    except ModelciError:
        return None
    ahead = Ahead(deployer, workspace.endpoint(spec.name, environment), spec.name, environment)
    ahead.start(version, commit)
    return ahead
