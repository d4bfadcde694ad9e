"""Model environments: a model's lock (`locks`, read by `lockfile`), the uv-built virtualenv
cached by hash (`uv`) with the serving layer beside the lock (`serving`), and a container image
that follows SageMaker's contract (`docker`, tags moved by `retag`)."""

from __future__ import annotations

from modelci.envs.locks import lock_for
from modelci.envs.uv import Environment, ensure_environment

__all__ = ["Environment", "ensure_environment", "lock_for"]
