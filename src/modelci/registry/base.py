"""The registry: versions, environment pointers and the append-only event log.

Every pointer change is a compare-and-set on the pointer's generation, done in one transaction
with the event that records it, so two CI jobs racing on one model never lose an update.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from modelci.errors import ConfigError

VersionStatus = Literal["training", "ready", "failed"]


# The fields of a version that `Registry.update_version` may change.
UPDATABLE = (
    "commit",
    "status",
    "fingerprint",
    "artifact_uri",
    "artifact_sha256",
    "metrics",
    "lock_hash",
    "actor",
    "ci_url",
    "details",
)

# The kinds of the events `set_pointer` and `clear_pointer` record: every change of a pointer is
# one of these (environments, and aliases under `@<name>`); other kinds (deploy_failed, test...)
# move nothing.
POINTER_MOVES = frozenset(
    {"deploy", "promote", "rollback", "release", "undeploy", "retire", "alias"}
)


@dataclass(frozen=True)
class VersionRecord:
    """One model built from one commit: `<model>-<sha12>`."""

    version: str
    model: str
    commit: str
    status: VersionStatus = "training"
    fingerprint: str | None = None
    artifact_uri: str | None = None
    artifact_sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    lock_hash: str | None = None
    actor: str | None = None
    ci_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class PendingDeploy:
    """A deploy's intent, written with the pointer move it makes and cleared when the deploy
    ends (served healthily, or put back): the version to put back (None: clear the pointer),
    the kind of move, and the process that is to finish it, trusted until `expires`. A
    pointer still pending once that process is gone is finished by the next command that
    touches the endpoint, or by the endpoint host (modelci.deploy.intent)."""

    previous: str | None
    kind: str
    owner: dict[str, Any]
    expires: float  # seconds since the epoch
    gradual: bool = False  # traffic moves in steps (modelci.serve.split), the old kept meanwhile

    def to_json(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "kind": self.kind,
            "owner": dict(self.owner),
            "expires": self.expires,
            **({"gradual": True} if self.gradual else {}),
        }

    @classmethod
    def from_json(cls, document: Any) -> PendingDeploy | None:
        """The intent a pointer row holds, or None (none, or not one this modelci wrote)."""
        if not isinstance(document, dict) or not isinstance(document.get("owner"), dict):
            return None
        try:
            return cls(
                previous=document.get("previous"),
                kind=str(document.get("kind") or "deploy"),
                owner=dict(document["owner"]),
                expires=float(document.get("expires") or 0),
                gradual=document.get("gradual") is True,
            )
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Pointer:
    """Which version an environment of a model wants; `generation` counts its changes, and
    `pending` is the intent of a deploy that moved it and has not finished yet."""

    model: str
    environment: str
    version: str
    generation: int
    updated_at: datetime
    actor: str | None = None
    pending: PendingDeploy | None = None


@dataclass(frozen=True)
class Shadow:
    """The candidate version an environment's endpoint mirrors `percent` % of its requests to,
    whose answers are never returned; `event` is the id of the event that started it."""

    model: str
    environment: str
    version: str
    percent: int
    event: int
    updated_at: datetime
    actor: str | None = None


@dataclass(frozen=True)
class Event:
    """One entry of the append-only log. `id` and `time` are set by the registry."""

    kind: str
    model: str
    version: str | None = None
    environment: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    commit: str | None = None
    tag: str | None = None
    actor: str | None = None
    ci_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    time: datetime | None = None


class Registry(abc.ABC):
    """The one source of truth for versions, pointers and events."""

    @abc.abstractmethod
    def upgrade(self) -> str:
        """Apply every pending migration; return the schema revision now in force."""

    @abc.abstractmethod
    def add_version(self, record: VersionRecord) -> VersionRecord:
        """Insert a version (its model row too, when new); an existing name is VersionExists."""

    @abc.abstractmethod
    def update_version(self, version: str, **fields: Any) -> VersionRecord:
        """Change fields of a version (status, artifact, metrics, details...)."""

    @abc.abstractmethod
    def get_version(self, version: str) -> VersionRecord | None:
        """The version of that name, or None."""

    @abc.abstractmethod
    def list_versions(self, model: str | None = None) -> list[VersionRecord]:
        """Versions, newest first, of one model or of all."""

    @abc.abstractmethod
    def find_by_fingerprint(self, model: str, fingerprint: str) -> VersionRecord | None:
        """The newest ready version of the model with this fingerprint, or None."""

    @abc.abstractmethod
    def models(self) -> list[str]:
        """Names of every model the registry knows, sorted."""

    @abc.abstractmethod
    def get_pointer(self, model: str, environment: str) -> Pointer | None:
        """The pointer of one environment of a model, or None when never set."""

    @abc.abstractmethod
    def pointers(self, model: str | None = None) -> list[Pointer]:
        """Every pointer, of one model or of all."""

    @abc.abstractmethod
    def set_pointer(
        self,
        model: str,
        environment: str,
        version: str,
        *,
        expected_generation: int | None,
        event: Event,
        pending: PendingDeploy | None = None,
        first: Event | None = None,
    ) -> Pointer:
        """Compare-and-set: point the environment at `version` if its generation is still
        `expected_generation` (None: the pointer must not exist yet), and append `event` in the
        same transaction. The pointer then carries `pending`, the deploy's intent (None: no
        deploy is under way); `first`, when given, is appended before `event` in the same
        transaction (the `deploy_failed` of the deploy a rollback undoes). Raises
        PointerConflict, changing nothing, when another writer won."""

    @abc.abstractmethod
    def clear_pointer(
        self,
        model: str,
        environment: str,
        *,
        expected_generation: int,
        event: Event,
        first: Event | None = None,
    ) -> None:
        """Compare-and-delete: remove the pointer if its generation is still
        `expected_generation`, appending `first` (when given) and `event` in the same
        transaction (a failed first deploy leaves the environment as it was: empty). Raises
        PointerConflict otherwise."""

    @abc.abstractmethod
    def settle_pointer(
        self, model: str, environment: str, *, expected_generation: int, event: Event | None
    ) -> bool:
        """Mark the pointer's deploy finished: clear its intent if the pointer is still at
        `expected_generation` and pending, appending `event` (when given) in the same
        transaction; the generation stays. False, with nothing written, when the pointer
        moved or another writer settled it first."""

    @abc.abstractmethod
    def append_event(self, event: Event) -> Event:
        """Append an event; return it with its id and time."""

    @abc.abstractmethod
    def events(
        self,
        model: str | None = None,
        *,
        kind: str | None = None,
        limit: int | None = None,
        environment: str | None = None,
        actor: str | None = None,
        kinds: frozenset[str] | None = None,
        until: datetime | None = None,
    ) -> list[Event]:
        """Events, newest first; each filter given narrows them (`kinds`: any of those kinds,
        `until`: at or before that moment)."""

    @abc.abstractmethod
    def last_deployed_commit(self, environment: str, model: str | None = None) -> str | None:
        """The commit of the newest deploy event to `environment` (of one model, or of any)
        that names a commit; None when there is none. One indexed query, not a scan."""

    def deployed_commits(self, environment: str) -> dict[str, str]:
        """Each model's commit of its newest deploy event to `environment` that names one:
        where `run` compares each model from."""
        found = {m: self.last_deployed_commit(environment, m) for m in self.models()}
        return {model: commit for model, commit in found.items() if commit}

    def newest_versions(self) -> dict[str, VersionRecord]:
        """Each model's newest version, by model."""
        newest: dict[str, VersionRecord] = {}
        for record in self.list_versions():  # newest first
            newest.setdefault(record.model, record)
        return newest

    def versions_named(self, names: Collection[str]) -> dict[str, VersionRecord]:
        """The versions of those names that exist, by name."""
        found = (self.get_version(name) for name in set(names))
        return {record.version: record for record in found if record is not None}

    def served_at(self, moment: datetime) -> dict[tuple[str, str], str | None]:
        """What each environment of each model pointed to at `moment`: (model, environment) ->
        version, None where the pointer had been cleared; pairs never set by then are left
        out. Read from the log: the newest pointer change at or before `moment`."""
        served: dict[tuple[str, str], str | None] = {}
        for event in self.events(kinds=POINTER_MOVES, until=moment):  # newest first
            if event.environment is not None:
                served.setdefault((event.model, event.environment), event.to_version)
        return served

    def shadows(self, model: str | None = None) -> list[Shadow]:
        """Every shadow, of one model or of all (a registry that keeps none: none)."""
        return []

    def set_shadow(
        self, model: str, environment: str, version: str, percent: int, *, event: Event
    ) -> Shadow:
        """Start (or replace) the environment's shadow, appending `event` in the same
        transaction; the shadow names that event's id."""
        raise ConfigError(f"the registry {self!r} keeps no shadows")

    def clear_shadow(self, model: str, environment: str, *, event: Event) -> Shadow | None:
        """End the environment's shadow, appending `event` in the same transaction; the
        shadow ended, or None (and nothing written) when there was none."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
