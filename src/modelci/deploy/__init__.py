"""Deploy backends, chosen by `[deploy].backend`, imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelci.loader import choose, load

if TYPE_CHECKING:
    from modelci.deploy.base import Deployer
    from modelci.workspace import Workspace

_DEPLOYERS = {
    "local": "modelci.deploy.local:LocalDeployer",
    "container": "modelci.deploy.container:ContainerDeployer",
    "host": "modelci.deploy.host:HostDeployer",
    "ray": "modelci.deploy.ray:RayDeployer",
    "sagemaker": "modelci.deploy.sagemaker:SageMakerDeployer",
}


def open_deployer(workspace: Workspace) -> Deployer:
    """The deployer the project's settings name. An unknown name, or a backend whose optional
    package is missing, is a ConfigError naming `deploy.backend` (and the extra to install)."""
    backend = workspace.project.deploy.backend
    where = {"key": "deploy.backend", "file": "modelci.toml"}
    target = choose(_DEPLOYERS, backend, what="deploy backend", **where)
    deployer: Deployer = load(target, what=f"the {backend} deploy backend", **where)(workspace)
    return deployer
