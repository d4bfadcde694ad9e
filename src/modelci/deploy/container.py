"""Endpoints as containers of the versions' images (`[deploy] backend = "container"`): the
endpoint host on this machine, as `local`, runs each version as a container of
`<registry>/<model>:<sha12>` with the same blue/green swap, health check, smoke test and
rollback; stopping the host stops its containers. `apply` makes sure the image is here (pulled
or built) before the host is asked, so that a missing image fails the deploy at once."""

from __future__ import annotations

from modelci.deploy.base import Served, Superseded
from modelci.deploy.local import LocalDeployer
from modelci.errors import ConfigError
from modelci.train.base import JOB_VERSION


class ContainerDeployer(LocalDeployer):
    """The local endpoint host, serving versions from their images."""

    def apply(
        self,
        endpoint: str,
        version: str,
        timeout: float,
        superseded: Superseded | None = None,
    ) -> Served:
        from modelci.envs.modelimage import model_image

        match = JOB_VERSION.match(version)
        if match is None:
            raise ConfigError(f"version {version!r} names no commit: cannot tell its image")
        model_image(self.workspace, match["model"], match["sha12"])
        return super().apply(endpoint, version, timeout, superseded)
