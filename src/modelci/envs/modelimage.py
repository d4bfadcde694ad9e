"""A version's image for the container backends: `<registry>/<model>:<sha12>`, found in the
engine's storage, else pulled from its registry, else built (when the commit is HEAD, as
`modelci build --image` builds it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelci.envs.docker import image_tag, registry_from
from modelci.envs.engine import Engine, require_engine
from modelci.envs.retag import DEFAULT_REGISTRY
from modelci.errors import ConfigError, ModelciError
from modelci.progress import Progress

if TYPE_CHECKING:
    from modelci.workspace import Workspace


def model_image(
    workspace: Workspace, model: str, commit: str, progress: Progress | None = None
) -> tuple[Engine, str]:
    """The engine and the local tag of `model`'s image at `commit` (a full commit or its
    first 12 digits), made available as cheaply as it can be."""
    settings = workspace.project.image
    engine = require_engine(settings.engine)
    registry = registry_from(None, settings.registry)
    tag = image_tag(registry, model, commit)
    if engine.has_image(tag):
        return engine, tag
    if registry != DEFAULT_REGISTRY:
        try:
            engine.pull(tag)
            return engine, tag
        except ModelciError:
            pass  # not pushed (yet): build it below when we can
    from modelci import git

    head = git.resolve(workspace.root, "HEAD") or ""
    if not head.startswith(commit[:12]):
        raise ConfigError(
            f"no image {tag} here or in its registry: build it at commit {commit[:12]} with "
            f"`modelci build {model} --image`"
        )
    from modelci.envs.docker import build_images

    build_images(workspace, [workspace.model(model)], progress=progress)
    return engine, tag
