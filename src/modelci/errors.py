"""The errors modelci reports, and the exit code each one carries.

    ModelciError            exit 1: the work failed
    ├── ConfigError         exit 2: a spec, setting or argument is wrong
    │   ├── VersionExists   exit 2: the registry already has a version of that name
    │   └── GitError        exit 2: git refused a revision or the repository is not usable
    ├── PointerConflict     exit 1: a compare-and-set lost a race
    ├── ArtifactCorrupted   exit 1: a stored artifact no longer matches its digest
    ├── ArtifactNotFound    exit 1: the store has no artifact with that digest
    ├── RegistryError       exit 1: the registry failed (connection, migration)
    ├── EnvironmentFailed   exit 1: uv could not resolve or install a model's environment
    ├── DeployFailed        exit 1: a deploy's health check or smoke request failed
    │   └── RolloutAlarm    exit 1: an alarm of a canary or linear rollout went off
    └── DeploySuperseded    exit 1: another deploy moved the pointer while this one waited

A missing optional package (boto3, ray, psycopg, pyarrow) is a ConfigError naming the extra to
install (`modelci.loader.missing_extra`). A write refused because a file or folder is read-only
(`read_only`) is a ConfigError naming the path. A failed gate or golden check is not an error:
`test` and `run` report it in their result and exit 1.

Only `modelci.cli` catches these: it prints the message and exits with `exit_code`.
The library raises; it never prints and never calls `sys.exit`.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any


class ModelciError(Exception):
    """Base of every error modelci reports."""

    exit_code = 1

    def __init__(self, message: str, *, file: Path | str | None = None, key: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        """The one-line message: `file: key: message`, leaving out what is unknown."""
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.message])

    def to_json(self) -> dict[str, Any]:
        """The error as `--json` prints it under `"error"`."""
        return {
            "type": type(self).__name__,
            "message": self.render(),
            "file": self.file,
            "key": self.key,
        }


class ConfigError(ModelciError):
    """A spec, setting or argument is wrong; exit 2."""

    exit_code = 2


class VersionExists(ConfigError):
    """The registry already holds a version of that name (`add_version` on a duplicate)."""


class GitError(ConfigError):
    """git refused a revision, or the folder is not a usable repository; exit 2."""


class PointerConflict(ModelciError):
    """A compare-and-set on an environment pointer found another value than expected."""


class ArtifactCorrupted(ModelciError):
    """A stored artifact's content no longer matches its sha256."""


class ArtifactNotFound(ModelciError):
    """The store holds no artifact with the asked digest."""


class RegistryError(ModelciError):
    """The registry could not be reached or used."""


class EnvironmentFailed(ModelciError):
    """uv could not resolve or install a model's environment; the message carries uv's reason."""


class DeployFailed(ModelciError):
    """A deploy did not become healthy or its smoke request failed (the previous version is
    back in place)."""


class RolloutAlarm(DeployFailed):
    """An alarm of `[deploy.rollout]` went off during a bake: all traffic goes back to the old
    version. `details`: the alarm, the measured value, its threshold, the step's share."""

    def __init__(self, message: str, *, details: dict[str, object]):
        self.details = details
        super().__init__(message)


class DeploySuperseded(ModelciError):
    """While a deploy waited for its version to serve, another deploy's compare-and-set moved
    the pointer on: the wait ends, and nothing is rolled back (the pointer is the winner's)."""

    def __init__(self, message: str, *, by: str | None):
        self.by = by  # the version the pointer names now, None when it was cleared
        super().__init__(message)


READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def read_only(error: OSError) -> ConfigError | None:
    """The ConfigError (exit 2, naming the path) for a write refused because a file or folder
    is read-only (a read-only mount, an immutable file, no write permission); None for any
    other OSError."""
    if error.errno not in READ_ONLY_ERRNOS:
        return None
    path = error.filename if error.filename is not None else "a file"
    return ConfigError(
        f"read-only, cannot write it ({error.strerror}): make it writable and run the command "
        "again",
        file=str(path),
    )
