"""Model environments: a uv-locked virtualenv cached by hash (`uv`), and a container image
that follows SageMaker's contract (`docker`)."""

from __future__ import annotations

from modelci.envs.uv import Environment, ensure_environment, lock_for

__all__ = ["Environment", "ensure_environment", "lock_for"]
