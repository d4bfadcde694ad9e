"""Which models a commit range touches, and why.

This module reads specs from git objects with tomllib only (no pydantic) and caches what it
needs of each `model.toml` by blob id, so that `modelci changed` stays fast on large repositories.
`modelci validate` is where specs get their full check.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelci import git
from modelci.errors import ConfigError, GitError
from modelci.settings import (
    MODEL_FILE,
    MODEL_NAME,
    PROJECT_FILE,
    apply_overrides,
    glob_regex,
    literal_prefix,
    model_folders,
    parse_toml,
    string_list,
)

REASON_ORDER = ("added", "renamed", "spec", "files", "depends_on", "shared")
CACHE_FILE = Path(".modelci") / "cache" / "model-specs.json"


@dataclass(frozen=True)
class ModelEntry:
    """What change detection needs of one model: its name, folder and `depends_on` globs."""

    name: str
    folder: str
    depends_on: tuple[str, ...]


@dataclass
class ChangedModel:
    """A model the range touched, with the reasons and the files that touched it."""

    model: str
    path: str
    reasons: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    renamed_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "path": self.path,
            "reasons": [r for r in REASON_ORDER if r in self.reasons],
            "files": sorted(self.files),
        }
        if self.renamed_from:
            data["renamed_from"] = self.renamed_from
        return data


@dataclass
class ChangeReport:
    """The answer of `modelci changed`."""

    base: str | None
    head: str
    changed: list[ChangedModel]
    deleted: list[str]
    uncommitted: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "changed": [c.to_json() for c in self.changed],
            "deleted": self.deleted,
            "uncommitted": self.uncommitted,
        }


class SpecCache:
    """`model.toml` blob id -> (explicit name, depends_on), kept in `.modelci/cache`."""

    def __init__(self, root: Path):
        self.path = root / CACHE_FILE
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(loaded, dict):  # a cache from elsewhere or half-written: keep what fits
            self.entries = {
                blob: value
                for blob, value in loaded.items()
                if isinstance(value, list)
                and len(value) == 2
                and (value[0] is None or isinstance(value[0], str))
                and isinstance(value[1], list)
                and all(isinstance(g, str) for g in value[1])
            }

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self.entries))
            os.replace(temporary, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs speed


@dataclass
class Snapshot:
    """The models of one commit and the project's `shared` globs there."""

    models: dict[str, ModelEntry]  # folder -> entry
    shared: list[str]
    patterns: list[str]  # the project's `models` globs

    def by_name(self) -> dict[str, ModelEntry]:
        return {m.name: m for m in self.models.values()}


def _spec_values(data: dict[str, Any], file: str) -> list[Any]:
    """The explicit name and depends_on of a parsed model.toml, type-checked."""
    section = data.get("model", {})
    if not isinstance(section, dict):
        raise ConfigError("expected a table", file=file, key="model")
    name = section.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError("expected a string", file=file, key="model.name")
    return [name, string_list(data, "model", "depends_on", [], file)]


def snapshot(root: Path, commit: str, cache: SpecCache, environ: Mapping[str, str]) -> Snapshot:
    """Read the project's settings and every model's spec at a commit."""
    tree = git.tree_blobs(root, commit)
    project: dict[str, Any] = {}
    if PROJECT_FILE in tree:
        blob = tree[PROJECT_FILE]
        project = parse_toml(git.read_blobs(root, [blob])[blob], PROJECT_FILE)
    project = apply_overrides(project, environ)
    patterns = string_list(project, "project", "models", ["models/*"], PROJECT_FILE)
    shared = string_list(project, "project", "shared", [], PROJECT_FILE)

    folders = model_folders(tree, patterns)
    missing = [tree[f"{f}/{MODEL_FILE}"] for f in folders]
    missing = [b for b in missing if b not in cache.entries]
    if missing:
        contents = git.read_blobs(root, sorted(set(missing)))
        blob_folder = {tree[f"{f}/{MODEL_FILE}"]: f for f in folders}
        for blob, text in contents.items():
            file = f"{blob_folder[blob]}/{MODEL_FILE}"
            cache.entries[blob] = _spec_values(parse_toml(text, file), file)
        cache.dirty = True

    models: dict[str, ModelEntry] = {}
    for folder in folders:
        spec_file = f"{folder}/{MODEL_FILE}"
        name, depends_on = cache.entries[tree[spec_file]]
        name = name or folder.rsplit("/", 1)[-1]
        if not MODEL_NAME.fullmatch(name):
            raise ConfigError(
                f"{name!r} is not a valid model name (it must match {MODEL_NAME.pattern})",
                file=spec_file,
                key="model.name",
            )
        models[folder] = ModelEntry(name, folder, tuple(depends_on))
    return Snapshot(models, shared, patterns)


def _ancestors(path: str) -> Iterable[str]:
    """'' and every folder above a file path, outermost first."""
    yield ""
    position = path.find("/")
    while position != -1:
        yield path[:position]
        position = path.find("/", position + 1)


class Matcher:
    """Finds the models a path touches, by folder and by `depends_on` glob.

    Globs are filed under their literal folder prefix and compiled only when a changed path
    lies below that folder, so a large repository costs little more than a small one.
    """

    def __init__(self, snap: Snapshot):
        self.folders = {folder: entry.name for folder, entry in snap.models.items()}
        self.patterns: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for entry in snap.models.values():
            for pattern in entry.depends_on:
                self.patterns[literal_prefix(pattern)].append((pattern, entry.name))
        self.compiled: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        self.shared = [glob_regex(p) for p in snap.shared]

    def _globs(self, folder: str) -> list[tuple[re.Pattern[str], str]]:
        globs = self.compiled.get(folder)
        if globs is None:
            regexes: dict[str, re.Pattern[str]] = {}  # many models share one glob
            globs = [
                (regexes.get(p) or regexes.setdefault(p, glob_regex(p)), model)
                for p, model in self.patterns[folder]
            ]
            self.compiled[folder] = globs
        return globs

    def touches(self, path: str) -> list[tuple[str, str]]:
        """(model, reason) for every model the path touches, shared globs aside."""
        hits: list[tuple[str, str]] = []
        for folder in _ancestors(path):
            name = self.folders.get(folder)
            if name is not None:
                hits.append((name, "spec" if path == f"{folder}/{MODEL_FILE}" else "files"))
            if folder in self.patterns:
                hits.extend(
                    (model, "depends_on")
                    for regex, model in self._globs(folder)
                    if regex.fullmatch(path)
                )
        return hits

    def is_shared(self, path: str) -> bool:
        return any(regex.fullmatch(path) for regex in self.shared)


def _resolve_or_explain(root: Path, rev: str, what: str) -> str:
    sha = git.resolve(root, rev)
    if sha is not None:
        return sha
    if git.is_shallow(root):
        raise GitError(
            f"{what} {rev!r} is not in this shallow clone; fetch more history with "
            "`git fetch --deepen=<N>` or `git fetch --unshallow` (CI: set the checkout's "
            "fetch depth to 0)"
        )
    raise GitError(f"{what} {rev!r} does not name a commit of this repository")


def _old_names(
    root: Path, changes: list[git.FileChange], patterns: list[str], cache: SpecCache
) -> dict[str, str]:
    """Old folder -> the model's name there, for every model.toml a change removed, moved or
    edited, read from the old blobs (so the base's whole tree need not be read)."""
    suffix = f"/{MODEL_FILE}"
    olds = {
        (c.old_path or c.path)[: -len(suffix)]: c.old_blob
        for c in changes
        if c.status in "DMRT" and model_folders([c.old_path or c.path], patterns)
    }
    missing = sorted({b for b in olds.values() if b not in cache.entries})
    if missing:
        contents = git.read_blobs(root, missing)
        for folder, blob in olds.items():
            if blob in contents:
                file = f"{folder}{suffix}"
                # a broken old spec (which this range may fix) names no model: use the folder's
                with contextlib.suppress(ConfigError):
                    cache.entries[blob] = _spec_values(parse_toml(contents[blob], file), file)
        cache.dirty = True
    return {
        folder: (cache.entries[blob][0] if blob in cache.entries else None)
        or folder.rsplit("/", 1)[-1]
        for folder, blob in olds.items()
    }


def _moves(
    root: Path,
    changes: list[git.FileChange],
    head_snap: Snapshot,
    changed: dict[str, ChangedModel],
    cache: SpecCache,
    environ: Mapping[str, str],
    base_sha: str | None,
    mark: Callable[[str, str, str | None], None],
) -> list[str]:
    """Mark renamed and added models; return the names of deleted ones."""
    if base_sha is None:
        return []
    head_names = head_snap.by_name()
    base_snap = None
    if any(c.path == PROJECT_FILE for c in changes):
        # the project's `models` globs may have moved: compare whole snapshots
        # a broken base (which this range may fix) leaves the diff alone to judge by
        with contextlib.suppress(ConfigError):
            base_snap = snapshot(root, base_sha, cache, environ)
    if base_snap is not None:
        old_names = {folder: entry.name for folder, entry in base_snap.models.items()}
        added = [f for f in head_snap.models if f not in base_snap.models]
    else:
        old_names = _old_names(root, changes, head_snap.patterns, cache)
        added = [
            c.path[: -len(MODEL_FILE) - 1]
            for c in changes
            if c.status in "AR"
            and c.path.endswith(f"/{MODEL_FILE}")
            and c.path[: -len(MODEL_FILE) - 1] in head_snap.models
        ]
    renamed_to = {
        c.old_path[: -len(MODEL_FILE) - 1]: c.path[: -len(MODEL_FILE) - 1]
        for c in changes
        if c.status == "R" and c.old_path and c.path.endswith(f"/{MODEL_FILE}")
    }
    deleted: list[str] = []
    for folder, old_name in old_names.items():
        new = head_snap.models.get(renamed_to.get(folder, folder))
        if new is None and old_name in head_names:
            new = head_names[old_name]  # moved, with content git did not pair up
        if new is None:
            deleted.append(old_name)
        elif new.folder != folder or new.name != old_name:
            mark(new.name, "renamed", None)
            changed[new.name].renamed_from = old_name
    for folder in added:
        name = head_snap.models[folder].name
        if changed.get(name) is None or changed[name].renamed_from is None:
            mark(name, "added", None)
    return deleted


def detect(
    root: Path,
    *,
    base: str | None = None,
    head: str = "HEAD",
    default_base: Callable[[str], str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ChangeReport:
    """The models that the commits from `base` (excluded) to `head` touch.

    Without `base`: `default_base(head_sha)` (the commit last deployed to the first
    environment) when it is an ancestor of head, else head's first parent; on a root commit
    every model counts as added.
    """
    environ = os.environ if environ is None else environ
    head_sha = _resolve_or_explain(root, head, "head")
    if base is not None:
        base_sha: str | None = _resolve_or_explain(root, base, "base")
    else:
        base_sha = None
        deployed = default_base(head_sha) if default_base else None
        deployed = git.resolve(root, deployed) if deployed else None
        # head itself deployed: compare with its parent, so that running the pipeline again
        # on the same commit lists the same models (and finds every step done)
        if deployed and deployed != head_sha and git.is_ancestor(root, deployed, head_sha):
            base_sha = deployed
        else:
            parents = git.parents(root, head_sha)
            if parents:
                base_sha = parents[0]  # a merge is compared with its first parent
            elif git.is_shallow(root):
                raise GitError(
                    f"head {head!r} has no parent in this shallow clone, so there is nothing to "
                    "compare it with; fetch more history with `git fetch --deepen=<N>` or pass "
                    "--base"
                )

    cache = SpecCache(root)
    head_snap = snapshot(root, head_sha, cache, environ)
    changes = git.diff(root, base_sha, head_sha) if base_sha else []
    matcher = Matcher(head_snap)
    head_names = head_snap.by_name()
    changed: dict[str, ChangedModel] = {}

    def mark(name: str, reason: str, path: str | None) -> None:
        if name not in changed:
            changed[name] = ChangedModel(name, head_names[name].folder)
        changed[name].reasons.add(reason)
        if path:
            changed[name].files.add(path)

    if base_sha is None:
        for entry in head_snap.models.values():
            mark(entry.name, "added", None)
        changes = []  # a root commit adds everything: no file needs matching

    shared_paths = []
    for change in changes:
        for path in (change.path, change.old_path):
            if path is None:
                continue
            for name, reason in matcher.touches(path):
                mark(name, reason, path)
            if matcher.is_shared(path):
                shared_paths.append(path)
    for path in shared_paths:
        for entry in head_snap.models.values():
            mark(entry.name, "shared", path)

    deleted = _moves(root, changes, head_snap, changed, cache, environ, base_sha, mark)
    uncommitted: set[str] = set()
    if head == "HEAD":  # the work tree only matters when asked about HEAD itself
        for path in git.uncommitted_paths(root):
            if path.startswith(".modelci/"):
                continue
            uncommitted.update(name for name, _reason in matcher.touches(path))
            if matcher.is_shared(path):
                uncommitted.update(e.name for e in head_snap.models.values())

    cache.save()
    return ChangeReport(
        base=base_sha,
        head=head_sha,
        changed=sorted(changed.values(), key=lambda c: c.model),
        deleted=sorted(set(deleted)),
        uncommitted=sorted(uncommitted),
    )
