"""Validated specs by content, so that fast paths read them without pydantic.

`spec.py` is the one reader of `model.toml` and `modelci.toml`. What it made of each
`model.toml` blob (the validated model's dump, or the ConfigError it raised) is kept in
`.modelci/cache/model-specs.json` keyed by schema version and git blob id; what it made of
`modelci.toml` under the MODELCI_* variables, in `.modelci/cache/project-specs.json` keyed by
the file's blob id and those values. `modelci changed`, a training cache hit and `modelci
build`'s cache hit read these into the small dataclasses below; on a miss they import
`spec.py`, which validates and fills the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError
from modelci.settings import OVERRIDABLE, PROJECT_FILE

SCHEMA = 8  # bump when spec.py's validated shape changes: older entries are then ignored
CACHE_FILE = Path(".modelci") / "cache" / "model-specs.json"
PROJECT_CACHE_FILE = Path(".modelci") / "cache" / "project-specs.json"
_KEEP_PROJECTS = 32
MODEL_TABLES = ("model", "train")  # what every validated model.toml dump has
PROJECT_TABLES = ("project", "registry", "store")  # and every modelci.toml dump


def blob_id(content: bytes) -> str:
    """git's object id of a file with this content: a work tree's spec and the committed
    blob share one cache entry."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class ModelFacts:
    """What the fast paths need of one validated `model.toml`."""

    name: str | None  # `[model].name`, when set
    requirements: str | None
    depends_on: tuple[str, ...]
    entrypoint: str
    hyperparameters: dict[str, Any]
    channels: dict[str, str]
    seed: int

    @classmethod
    def of(cls, dump: Mapping[str, Any]) -> ModelFacts:
        model, train = dump["model"], dump["train"]
        return cls(
            model["name"],
            model["requirements"],
            tuple(model["depends_on"]),
            train["entrypoint"],
            dict(train["hyperparameters"]),
            dict(train["channels"]),
            train["seed"],
        )


@dataclass(frozen=True)
class ProjectFacts:
    """What the fast paths need of the validated project settings."""

    models: list[str]
    shared: list[str]
    registry_url: str
    store_url: str

    @classmethod
    def of(cls, dump: Mapping[str, Any]) -> ProjectFacts:
        return cls(
            list(dump["project"]["models"]),
            list(dump["project"]["shared"]),
            dump["registry"]["url"],
            dump["store"]["url"],
        )

    def url(self, section: str) -> str:
        """`[registry].url` or `[store].url`."""
        return self.registry_url if section == "registry" else self.store_url


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save(path: Path, entries: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed


def _entry_ok(value: Any, tables: tuple[str, ...]) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    if "spec" in value:  # a validated dump has these tables, whatever else it holds
        spec = value["spec"]
        return isinstance(spec, dict) and all(isinstance(spec.get(t), dict) for t in tables)
    error = value.get("error")
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and (error.get("key") is None or isinstance(error.get("key"), str))
    )


def _as_entry(verdict: dict[str, Any] | ConfigError) -> dict[str, Any]:
    if isinstance(verdict, ConfigError):
        return {"error": {"message": verdict.message, "key": verdict.key}}
    return {"spec": verdict}


def _from_entry(entry: dict[str, Any], file: str) -> dict[str, Any]:
    if "error" in entry:
        raise ConfigError(entry["error"]["message"], file=file, key=entry["error"]["key"])
    spec: dict[str, Any] = entry["spec"]
    return spec


class SpecCache:
    """`model.toml` blob id -> what validation made of it, kept in `.modelci/cache`."""

    def __init__(self, root: Path):
        self.path = root / CACHE_FILE
        self.dirty = False
        prefix = f"{SCHEMA}:"
        # a cache from elsewhere, half-written or of another schema: keep what fits
        self.entries: dict[str, dict[str, Any]] = {
            key[len(prefix) :]: value
            for key, value in _load(self.path).items()
            if key.startswith(prefix) and _entry_ok(value, MODEL_TABLES)
        }

    def missing(self, blobs: Iterable[str]) -> list[str]:
        """The blobs not validated yet, sorted."""
        return sorted({b for b in blobs if b not in self.entries})

    def validate(self, blob: str, text: bytes, spec_file: str) -> None:
        """Validate one blob's text (importing spec.py) and keep the verdict."""
        from modelci.spec import validate_model_text

        try:
            self.remember(blob, validate_model_text(text, spec_file))
        except ConfigError as error:
            self.remember(blob, error)

    def remember(self, blob: str, verdict: dict[str, Any] | ConfigError) -> None:
        """Keep spec.py's verdict on a blob: its validated dump or its ConfigError."""
        self.entries[blob] = _as_entry(verdict)
        self.dirty = True

    def dump(self, blob: str, spec_file: str) -> dict[str, Any]:
        """The validated dump of a blob already validated; its ConfigError, named after
        `spec_file`, if it failed."""
        return _from_entry(self.entries[blob], spec_file)

    def facts(self, blob: str, spec_file: str) -> ModelFacts:
        """What the fast paths need of a blob already validated (or its ConfigError)."""
        return ModelFacts.of(self.dump(blob, spec_file))

    def read(
        self,
        blobs: Mapping[str, str],
        fetch: Callable[[list[str]], Mapping[str, bytes]],
    ) -> None:
        """Validate every blob of `blobs` (spec file -> blob id) not cached yet; `fetch` reads
        blob contents by id."""
        missing = self.missing(blobs.values())
        if not missing:
            return
        contents = fetch(missing)
        files = {blob: file for file, blob in blobs.items()}
        for blob in missing:
            self.validate(blob, contents[blob], files[blob])

    def save(self) -> None:
        if self.dirty:
            _save(self.path, {f"{SCHEMA}:{blob}": value for blob, value in self.entries.items()})
            self.dirty = False


def project_key(blob: str | None, environ: Mapping[str, str]) -> str:
    """The cache key of `modelci.toml`'s blob (None: no file) under the MODELCI_* values that
    may override it."""
    variables = {
        name: environ[name]
        for section, keys in OVERRIDABLE.items()
        for key in keys
        if environ.get(name := f"MODELCI_{section.upper()}_{key.upper()}")
    }
    return (
        f"{SCHEMA}:{blob}:"
        + hashlib.sha256(json.dumps(variables, sort_keys=True).encode()).hexdigest()
    )


def project_dump(
    root: Path, blob: str | None, read: Callable[[], bytes | None], environ: Mapping[str, str]
) -> dict[str, Any]:
    """The validated project settings of `modelci.toml` (blob id `blob`, text from `read`),
    from the cache or, on a miss, from spec.py (which then fills the cache)."""
    entry: dict[str, Any] | None = _load(root / PROJECT_CACHE_FILE).get(project_key(blob, environ))
    if entry is None or not _entry_ok(entry, PROJECT_TABLES):
        from modelci.spec import validate_project_text

        try:
            verdict: dict[str, Any] | ConfigError = validate_project_text(read(), environ)
        except ConfigError as error:
            verdict = error
        entry = remember_project(root, blob, environ, verdict)
    return _from_entry(entry, PROJECT_FILE)


def remember_project(
    root: Path, blob: str | None, environ: Mapping[str, str], verdict: dict[str, Any] | ConfigError
) -> dict[str, Any]:
    """Keep spec.py's verdict on `modelci.toml` (blob id `blob`) under these MODELCI_* values;
    the entry kept."""
    path = root / PROJECT_CACHE_FILE
    entries = _load(path)
    key = project_key(blob, environ)
    entries.pop(key, None)
    entry = entries[key] = _as_entry(verdict)
    _save(path, dict(list(entries.items())[-_KEEP_PROJECTS:]))
    return entry


def work_tree_project(root: Path, environ: Mapping[str, str]) -> ProjectFacts:
    """The work tree's validated project settings, as the fast paths need them."""
    path = root / PROJECT_FILE
    try:
        text: bytes | None = path.read_bytes()
    except FileNotFoundError:
        text = None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=PROJECT_FILE) from None
    return ProjectFacts.of(
        project_dump(root, None if text is None else blob_id(text), lambda: text, environ)
    )
