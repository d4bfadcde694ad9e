"""Training: the backends that run a job, and `runner.py`, which turns a commit into a
recorded version.

`TRAINERS` maps `[train].backend` to `"module:Class"`, imported only when chosen; `spec.py`
checks the setting against it, so a new backend is one module and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelci.train.base import Trainer
    from modelci.workspace import Workspace

TRAINERS = {
    "local": "modelci.train.local:LocalTrainer",
    "container": "modelci.train.container:ContainerTrainer",
    "ray": "modelci.train.ray:RayTrainer",
    "sagemaker": "modelci.train.sagemaker:SageMakerTrainer",
}


def open_trainer(workspace: Workspace) -> Trainer:
    """The training backend the settings name (a backend may check its settings here)."""
    from modelci.loader import choose, load

    what, key = "training backend", "train.backend"
    target = choose(
        TRAINERS, workspace.project.train.backend, what=what, key=key, file="modelci.toml"
    )
    trainer: Trainer = load(target, what=what, key=key, file="modelci.toml")(workspace)
    return trainer
