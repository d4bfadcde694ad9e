"""Deploy backends, chosen by `[deploy].backend`, imported only when chosen."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from modelci.errors import ConfigError, NotBuiltYet

if TYPE_CHECKING:
    from modelci.deploy.base import Deployer
    from modelci.workspace import Workspace

_DEPLOYERS = {
    "local": "modelci.deploy.local:LocalDeployer",
    "ray": "modelci.deploy.ray:RayDeployer",
    "sagemaker": "modelci.deploy.sagemaker:SageMakerDeployer",
}
_PLANNED: tuple[str, ...] = ()


def open_deployer(workspace: Workspace) -> Deployer:
    """The deployer the project's settings name."""
    backend = workspace.project.deploy.backend
    if backend in _PLANNED:
        raise NotBuiltYet(
            f"the {backend!r} deploy backend is not built yet",
            file="modelci.toml",
            key="deploy.backend",
        )
    if backend not in _DEPLOYERS:
        raise ConfigError(
            f"unknown deploy backend {backend!r} (known: {', '.join(_DEPLOYERS)})",
            file="modelci.toml",
            key="deploy.backend",
        )
    module, name = _DEPLOYERS[backend].split(":")
    deployer: Deployer = getattr(importlib.import_module(module), name)(workspace)
    return deployer
