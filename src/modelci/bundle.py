"""A version's serving bundle: what a host needs, besides the artifact, to serve the version
with no checkout. Stored at training time beside the artifact, content-addressed, and named in
the version's `details["serving"]`:

- `bundle_sha256`: a reproducible .tar.gz of the model folder as the commit has it (the
  handler and whatever it imports from there) and `serving.json` (the handler's path, the
  `[serve]` settings, the smoke request);
- `lock_sha256`: the lock the version was trained with, whose digest is its `lock_hash`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError

if TYPE_CHECKING:
    from modelci.registry.base import VersionRecord
    from modelci.spec import ModelSpec
    from modelci.store.base import Store
    from modelci.workspace import Workspace

CONFIG = "serving.json"
CODE = "code"


@dataclass(frozen=True)
class Bundle:
    """A version's serving bundle, unpacked: its code folder and settings, and its lock."""

    folder: Path  # the unpacked bundle
    handler: str | None  # absolute path of the handler file, when the model names one
    workers: int
    batch_max_size: int
    batch_max_wait_ms: float
    smoke: tuple[bytes, str] | None  # body and content type
    lock_text: str
    isolation: str | None = None  # the model's own `[serve] isolation`, when it sets one
    capture_percent: float = 0.0  # `[serve.capture] percent`
    capture_columns: tuple[str, ...] = ()


def store_bundle(
    workspace: Workspace, spec: ModelSpec, commit: str | None, lock_path: Path
) -> dict[str, str]:
    """Pack and store the serving bundle of `spec` at `commit` (None: the work tree) and the
    lock at `lock_path`; the `details["serving"]` entry naming both."""
    from modelci.deploy.smoke import smoke_request
    from modelci.runtime import tarball
    from modelci.train.jobs import export

    store = workspace.store()
    lock = store.put_bytes(lock_path.read_bytes())
    smoke = smoke_request(workspace, spec)
    config = {
        "model": spec.name,
        "handler": (
            f"{CODE}/{spec.folder}/{spec.file.serve.handler}" if spec.file.serve.handler else None
        ),
        "workers": spec.file.serve.workers,
        "batch_max_size": spec.file.serve.batch.max_size,
        "batch_max_wait_ms": spec.file.serve.batch.max_wait_ms,
        "capture": spec.file.serve.capture.model_dump(mode="json"),
        "smoke": None
        if smoke is None
        else {"body": base64.b64encode(smoke[0]).decode(), "content_type": smoke[1]},
    }
    if spec.file.serve.isolation is not None:  # bundles of models without it stay as they were
        config["isolation"] = spec.file.serve.isolation
    with tempfile.TemporaryDirectory(prefix="modelci-bundle-") as scratch:
        folder = Path(scratch) / "bundle"
        export(workspace.root, commit, [spec.folder], folder / CODE)
        (folder / CONFIG).write_text(json.dumps(config, sort_keys=True, indent=1) + "\n")
        archive = tarball.pack(folder, Path(scratch) / "bundle.tar.gz")
        bundle = store.put_file(archive)
    return {"bundle_sha256": bundle.sha256, "lock_sha256": lock.sha256}


def load_bundle(store: Store, record: VersionRecord, cache: Path) -> Bundle:
    """The version's bundle, unpacked once under `cache/<sha256>/` and verified on the way.
    A version trained without one is a ConfigError saying so."""
    from modelci.train.artifacts import unpack

    serving: dict[str, Any] = record.details.get("serving") or {}
    sha, lock_sha = serving.get("bundle_sha256"), serving.get("lock_sha256")
    if not sha or not lock_sha:
        raise ConfigError(
            f"version {record.version} has no serving bundle in the store (trained by a modelci "
            "without one): train it again (`modelci train --force`) to serve it from a host"
        )
    target = cache / sha
    if not (target / CONFIG).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as scratch:
            archive = store.get_file(sha, Path(scratch) / "bundle.tar.gz")
            unpacked = unpack(archive, Path(scratch) / "bundle")
            try:
                os.rename(unpacked, target)
            except OSError:
                if not (target / CONFIG).is_file():
                    raise
                shutil.rmtree(unpacked, ignore_errors=True)  # another host won the race
    config = json.loads((target / CONFIG).read_text())
    smoke = config.get("smoke")
    return Bundle(
        folder=target,
        handler=str(target / config["handler"]) if config.get("handler") else None,
        workers=int(config["workers"]),
        batch_max_size=int(config["batch_max_size"]),
        batch_max_wait_ms=float(config["batch_max_wait_ms"]),
        smoke=None if not smoke else (base64.b64decode(smoke["body"]), str(smoke["content_type"])),
        lock_text=store.get_bytes(lock_sha).decode("utf-8"),
        isolation=config.get("isolation"),
        capture_percent=float((config.get("capture") or {}).get("percent", 0)),
        capture_columns=tuple((config.get("capture") or {}).get("columns", ())),
    )
