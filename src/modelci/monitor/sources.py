"""Where an endpoint's captured requests are read from, for `modelci capture`, `drift` and
`shadow`: the files the endpoint host writes into the artifact store
(`capture/<endpoint>/<version>/yyyy/mm/dd/hh/<uuid>.jsonl`), or, on the `sagemaker` deploy
backend, the files SageMaker's own data capture writes into the bucket,
`s3://<bucket>/<prefix>/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl`, in the same
JSON-lines format. SageMaker names the variant, not the version: a record of the production
variant (`AllTraffic`) belongs to the version the environment's pointer named when it was
answered, and one of the shadow variant to the candidate of the shadow running then, both
read from the registry's log."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError
from modelci.monitor.captured import CaptureFile, capture_files, inference_time, read_records

if TYPE_CHECKING:
    from modelci.registry.base import Event, Registry
    from modelci.store.base import Store
    from modelci.workspace import Workspace

PRODUCTION_VARIANT = "AllTraffic"  # modelci.deploy.sagemaker.VARIANT
SHADOW_VARIANT = "Shadow"  # the candidate's variant in modelci.deploy.sagemaker_shadow
HOUR = 3600.0
# inferenceTime is stamped to the second (or the millisecond): a record stamped in second S
# was answered at some moment of [S, S + 1), so it is attributed as of S + 1.
STAMP_S = 1.0


def reads_sagemaker(workspace: Workspace) -> bool:
    """Whether the project's endpoints are SageMaker's, whose capture SageMaker writes."""
    return workspace.project.deploy.backend == "sagemaker"


def _seconds(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class Timeline:
    """Which version each variant of an environment's endpoint served, and when."""

    live: list[tuple[float, str | None]] = field(default_factory=list)  # pointer moves
    shadows: list[tuple[float, float, str, int]] = field(default_factory=list)  # start, end

    @classmethod
    def read(cls, registry: Registry, model: str, environment: str) -> Timeline:
        from modelci.registry.base import POINTER_MOVES
        from modelci.shadow.pairs import END_KIND, START_KIND

        moves = registry.events(model, kinds=POINTER_MOVES, environment=environment)
        live = sorted((_seconds(e.time), e.to_version) for e in moves)
        starts: list[Event] = sorted(
            registry.events(model, kind=START_KIND, environment=environment),
            key=lambda e: e.id or 0,
        )
        ended = {
            e.details.get("shadow"): _seconds(e.time)
            for e in registry.events(model, kind=END_KIND, environment=environment)
        }
        shadows = []
        for index, start in enumerate(starts):
            end = ended.get(start.id, math.inf)
            if index + 1 < len(starts):  # a new shadow replaces the one before
                end = min(end, _seconds(starts[index + 1].time))
            if start.version is not None and start.id is not None:
                shadows.append((_seconds(start.time), end, start.version, start.id))
        return cls(live, shadows)

    def version(self, variant: str, at: float) -> str | None:
        """The version `variant` served at `at` (seconds since the epoch, as stamped)."""
        moment = at + STAMP_S
        if variant == SHADOW_VARIANT:
            return next((v for s, e, v, _ in self.shadows if s <= moment < e), None)
        index = bisect.bisect_right([t for t, _ in self.live], moment)
        return self.live[index - 1][1] if index else None

    def versions(self, variant: str, start: float, end: float) -> list[str]:
        """The versions `variant` served at some moment of [start, end)."""
        if variant == SHADOW_VARIANT:
            found = [v for s, e, v, _ in self.shadows if s < end + STAMP_S and e > start]
        else:
            found = [v for t, v in self.live if start < t < end + STAMP_S and v]
            first = self.version(variant, start - STAMP_S)
            found = ([first] if first else []) + found
        return sorted(set(found))


class StoreCapture:
    """The endpoint host's capture files, in the artifact store."""

    def __init__(self, store: Store, endpoint: str):
        self.store = store
        self.endpoint = endpoint

    def files(self, version: str | None, since: float | None) -> list[CaptureFile]:
        return capture_files(self.store, self.endpoint, version, since)

    def file_json(self, item: CaptureFile) -> dict[str, Any]:
        return item.to_json()

    def records(
        self, files: list[CaptureFile], version: str | None, since: float | None
    ) -> list[dict[str, Any]]:
        """The records of `files` from `since` on, oldest first (of `version`, when given)."""
        return read_records(self.store, files, since)


class SageMakerCapture(StoreCapture):
    """SageMaker's own capture files in the `[sagemaker] bucket`; a file's `version` is its
    variant's name, each record's version is read from the timeline."""

    def __init__(self, store: Store, endpoint: str, timeline: Timeline):
        super().__init__(store, endpoint)
        self.timeline = timeline

    def files(self, version: str | None, since: float | None) -> list[CaptureFile]:
        found = capture_files(self.store, self.endpoint, None, since)
        if version is None:
            return found
        return [f for f in found if version in self._versions(f)]

    def _versions(self, item: CaptureFile) -> list[str]:
        return self.timeline.versions(item.version, item.hour, item.hour + HOUR)

    def file_json(self, item: CaptureFile) -> dict[str, Any]:
        versions = self._versions(item)
        return {
            **item.to_json(),
            "version": versions[0] if len(versions) == 1 else None,
            "variant": item.version,
            "versions": versions,
        }

    def records(
        self, files: list[CaptureFile], version: str | None, since: float | None
    ) -> list[dict[str, Any]]:
        return [r for _, r in self.variant_records(files, version, since)]

    def variant_records(
        self, files: list[CaptureFile], version: str | None, since: float | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(variant, record) of `files` from `since` on, oldest first; of `version` only,
        when given."""
        found: list[tuple[float, str, dict[str, Any]]] = []
        for item in files:
            for record in read_records(self.store, [item], since):
                at = inference_time(record)
                if version is None or self.timeline.version(item.version, at) == version:
                    found.append((at, item.version, record))
        found.sort(key=lambda entry: entry[0])
        return [(variant, record) for _, variant, record in found]


def capture_source(workspace: Workspace, model: str, environment: str) -> StoreCapture:
    """Where `environment`'s endpoint of `model` has its captures."""
    endpoint = workspace.endpoint(model, environment)
    if not reads_sagemaker(workspace):
        return StoreCapture(workspace.store(), endpoint)
    return sagemaker_source(workspace, model, environment)


def sagemaker_source(workspace: Workspace, model: str, environment: str) -> SageMakerCapture:
    """SageMaker's capture of the environment's endpoint, under `[sagemaker] bucket`."""
    from modelci.store.s3 import S3Store

    bucket = workspace.project.sagemaker.bucket
    if not bucket:
        raise ConfigError(
            "SageMaker's data capture is read from its bucket: set [sagemaker] bucket in "
            "modelci.toml or MODELCI_SAGEMAKER_BUCKET",
            file="modelci.toml",
            key="sagemaker.bucket",
        )
    with workspace.registry() as registry:
        timeline = Timeline.read(registry, model, environment)
    return SageMakerCapture(S3Store(bucket), workspace.endpoint(model, environment), timeline)
