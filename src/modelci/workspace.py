"""The repository a command works on: its root, settings, models, registry and store,
each loaded when first asked for."""

from __future__ import annotations

import os
import socket
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from modelci import git

if TYPE_CHECKING:
    from modelci.errors import ConfigError
    from modelci.registry.base import Registry
    from modelci.spec import ModelSpec, ProjectFile
    from modelci.speccache import ProjectFacts
    from modelci.store.base import Store


class Workspace:
    """A model repository and what modelci keeps beside it in `.modelci/`."""

    detached = False  # True for a host's folder with no checkout (DetachedWorkspace)

    def __init__(self, start: Path | None = None):
        self.start = (start or Path.cwd()).resolve()

    @cached_property
    def root(self) -> Path:
        """The top of the git work tree."""
        return git.find_root(self.start)

    @property
    def state_dir(self) -> Path:
        """`.modelci/` beside the repository's files: registry, artifacts, caches."""
        return self.root / ".modelci"

    @cached_property
    def project(self) -> ProjectFile:
        """The validated project settings, MODELCI_* overrides applied."""
        from modelci.spec import load_project

        return load_project(self.root)

    @cached_property
    def project_facts(self) -> ProjectFacts:
        """What the fast paths need of the validated project settings, read from the spec
        cache without pydantic when modelci.toml and the MODELCI_* values were seen before."""
        from modelci.speccache import work_tree_project

        return work_tree_project(self.root, os.environ)

    def project_url(self, section: str) -> str:
        """`[registry].url` or `[store].url`, validated, with its default."""
        return self.project_facts.url(section)

    def project_shared(self) -> list[str]:
        """`[project].shared`, validated."""
        return self.project_facts.shared

    def files(self) -> list[str]:
        """The work tree's files that git tracks or would track (ignored ones left out, and
        tracked ones deleted from the work tree too)."""
        out = git.run(self.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        return [f for f in out.decode().split("\0") if f and (self.root / f).exists()]

    @cached_property
    def readable_models(self) -> tuple[list[ModelSpec], list[ConfigError]]:
        """Every valid model of the work tree, and one error for each bad spec: what read-only
        commands (status, history, serve) show and warn about, so that one broken model.toml
        does not hide the registry's state."""
        from modelci.spec import collect_models

        return collect_models(self.root, self.project, self.files())

    @cached_property
    def models(self) -> list[ModelSpec]:
        """Every model of the work tree, validated; the first bad spec raises its error."""
        models, errors = self.readable_models
        if errors:
            raise errors[0]
        return models

    def model(self, name: str) -> ModelSpec:
        """The work tree's model of that name, validated; its own ConfigError when its spec
        (or a file it names) is bad, whatever another model's spec says."""
        from modelci.spec import find_model

        models, errors = self.readable_models
        for error in errors:
            if error.file and loose_name(self.root, error.file) == name:
                raise error
        return find_model(models, name)

    def registry(self) -> Registry:
        """Open the registry, applying migrations on first use."""
        from modelci.registry import open_registry

        return open_registry(self.project_url("registry"), self.root)

    def lazy_registry(self) -> Registry:
        """The registry, opened on first use: a command that may not need it (a cache hit
        answered from elsewhere, a job already running) doesn't pay SQLAlchemy's import
        before its work starts."""
        return cast("Registry", _LazyRegistry(self))

    def registry_exists(self) -> bool:
        """Whether a registry has been made yet (always True for a server URL). A registry
        file that was made and is now missing or empty is a ConfigError naming it."""
        from modelci.registry import sqlite_file

        path = sqlite_file(self.project_url("registry"), self.root)
        if path is None:
            return True
        from modelci.registry.presence import check_registry_file

        return check_registry_file(path)

    def store(self) -> Store:
        """Open the artifact store."""
        from modelci.store import open_store

        return open_store(self.project_url("store"), self.root)

    @property
    def environments(self) -> list[str]:
        """Environment names in order: the first takes merges, the last is production."""
        return list(self.project.environments)

    def endpoint(self, model: str, environment: str) -> str:
        """`<model><suffix>` for an environment."""
        return model + self.project.environments[environment].suffix

    def actor(self) -> str:
        """Who acts: the CI user when in CI, else the git identity, else the OS user."""
        for variable in ("CIRCLE_USERNAME", "GITHUB_ACTOR", "GITLAB_USER_LOGIN"):
            if os.environ.get(variable):
                return os.environ[variable]
        return git.identity(self.root) or os.environ.get("USER", "unknown")

    @staticmethod
    def ci_url() -> str | None:
        """The URL of the CI run acting now, read from CircleCI's or GitHub Actions' variables."""
        if os.environ.get("CIRCLE_BUILD_URL"):
            return os.environ["CIRCLE_BUILD_URL"]
        server, repo, run = (
            os.environ.get(v) for v in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
        )
        if server and repo and run:
            return f"{server}/{repo}/actions/runs/{run}"
        return None


class DetachedWorkspace(Workspace):
    """A folder with no checkout, where a host following a shared registry keeps its
    `.modelci/` (environments, artifacts, logs): settings come from MODELCI_* (and a
    modelci.toml there, if any), and no model is read from a work tree."""

    detached = True

    @cached_property
    def root(self) -> Path:
        return self.start

    def files(self) -> list[str]:
        return []

    def actor(self) -> str:
        return f"host {socket.gethostname()}"


def loose_name(root: Path, spec_file: str) -> str:
    """The name a model.toml gives its model, read loosely (the spec may be bad): its
    `[model].name`, else its folder's name."""
    import tomllib

    try:
        explicit = tomllib.loads((root / spec_file).read_text())["model"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        explicit = None
    folder = spec_file.rsplit("/", 1)[0]
    return explicit if isinstance(explicit, str) else folder.rsplit("/", 1)[-1]


class _LazyRegistry:
    """Stands for the registry until first used, then forwards to it."""

    def __init__(self, workspace: Workspace):
        self._workspace = workspace
        self._opened: Registry | None = None

    def __getattr__(self, name: str) -> Any:
        if self._opened is None:
            self._opened = self._workspace.registry()
        return getattr(self._opened, name)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()

    def __enter__(self) -> _LazyRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
