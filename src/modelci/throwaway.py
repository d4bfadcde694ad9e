"""Settings that end with a throwaway CI runner: under CI=true, a registry in an SQLite file, an
artifact store in a folder, or endpoints started by the `local` deploy backend all live on the
runner and are gone with it; the commands that record and deploy versions refuse them unless
told they are meant (`--allow-local`, or MODELCI_ALLOW_LOCAL=1)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from modelci.errors import ConfigError
from modelci.workspace import Workspace

ALLOW_VARIABLE = "MODELCI_ALLOW_LOCAL"


def in_ci(environ: Mapping[str, str]) -> bool:
    """Whether a CI service runs us (`CI` set, as every major one sets it)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def throwaway(workspace: Workspace) -> list[tuple[str, str]]:
    """Each setting that would live on this machine only: (its variable, why)."""
    found: list[tuple[str, str]] = []
    if workspace.project_url("registry").lower().startswith("sqlite:"):
        found.append(("MODELCI_REGISTRY_URL", "the registry is an SQLite file on this runner"))
    store = workspace.project_url("store")
    if "://" not in store or store.lower().startswith("file://"):
        found.append(("MODELCI_STORE_URL", "the artifact store is a folder on this runner"))
    if workspace.project.deploy.backend == "local":
        found.append(
            ("MODELCI_DEPLOY_BACKEND", "the `local` deploy backend starts endpoints on this runner")
        )
    return found


def refuse_throwaway(workspace: Workspace, allow_local: bool) -> None:
    """Under CI=true, a ConfigError (exit 2) naming every setting that ends with the runner and
    the variable that sets it; nothing when `allow_local` or not in CI."""
    if allow_local or not in_ci(os.environ):
        return
    found = throwaway(workspace)
    if not found:
        return
    variables = ", ".join(variable for variable, _ in found)
    raise ConfigError(
        f"CI=true, but {'; '.join(why for _, why in found)}: all gone when the job's runner "
        f"is. Set {variables} (from the CI's secrets) to the team's shared ones (a "
        "postgresql:// registry, an s3:// or oci:// store, the `host` backend with a "
        f"`modelci serve` host following them), or pass --allow-local ({ALLOW_VARIABLE}=1) "
        "if a throwaway run is meant",
        key=found[0][0],
    )
