"""Which models a commit range touches, and why.

This module reads specs from git objects through the spec cache (`speccache.py`): each
`model.toml` blob is validated once, by spec.py, and read back without pydantic afterwards, so
that `modelci changed` stays fast on large repositories and judges a spec as `validate` does.
"""

from __future__ import annotations

import contextlib
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
    PROJECT_FILE,
    glob_regex,
    literal_prefix,
    model_folders,
    model_name,
)
from modelci.speccache import CACHE_FILE as CACHE_FILE
from modelci.speccache import ProjectFacts, project_dump
from modelci.speccache import SpecCache as SpecCache

REASON_ORDER = ("added", "undeployed", "renamed", "spec", "files", "depends_on", "shared")


@dataclass(frozen=True)
class ModelEntry:
    """What change detection needs of one model: its name, folder and `depends_on` globs."""

    name: str
    folder: str
    depends_on: tuple[str, ...]
    error: str | None = None  # a bad spec: this model's own failure, not the snapshot's


@dataclass
class ChangedModel:
    """A model the range touched, with the reasons and the files that touched it."""

    model: str
    path: str
    reasons: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    renamed_from: str | None = None
    error: str | None = None  # its spec at head is bad: its pipeline row fails, no other

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "path": self.path,
            "reasons": [r for r in REASON_ORDER if r in self.reasons],
            "files": sorted(self.files),
        }
        if self.renamed_from:
            data["renamed_from"] = self.renamed_from
        if self.error:
            data["error"] = self.error
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


@dataclass
class Snapshot:
    """The models of one commit and the project's `shared` globs there."""

    models: dict[str, ModelEntry]  # folder -> entry
    shared: list[str]
    patterns: list[str]  # the project's `models` globs

    def by_name(self) -> dict[str, ModelEntry]:
        return {m.name: m for m in self.models.values()}


def snapshot(root: Path, commit: str, cache: SpecCache, environ: Mapping[str, str]) -> Snapshot:
    """Read the project's settings and every model's spec at a commit, as validated (from the
    cache, or by spec.py on a miss). A bad spec is its model's entry's `error` (named after
    the folder, depending on nothing), so that it stops no other model."""
    tree = git.tree_blobs(root, commit)
    project_blob = tree.get(PROJECT_FILE)
    project = ProjectFacts.of(
        project_dump(
            root,
            project_blob,
            lambda: (
                None if project_blob is None else git.read_blobs(root, [project_blob])[project_blob]
            ),
            environ,
        )
    )
    folders = model_folders(tree, project.models)
    files = {f"{f}/{MODEL_FILE}": tree[f"{f}/{MODEL_FILE}"] for f in folders}
    cache.read(files, lambda blobs: git.read_blobs(root, blobs))
    models: dict[str, ModelEntry] = {}
    for folder in folders:
        spec_file = f"{folder}/{MODEL_FILE}"
        try:
            facts = cache.facts(tree[spec_file], spec_file)
            name = model_name(folder, facts.name, spec_file)
        except ConfigError as error:
            models[folder] = ModelEntry(folder.rsplit("/", 1)[-1], folder, (), error.render())
            continue
        models[folder] = ModelEntry(name, folder, facts.depends_on)
    return Snapshot(models, project.shared, project.models)


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
    cache.read(
        {f"{folder}{suffix}": blob for folder, blob in olds.items() if blob},
        lambda blobs: git.read_blobs(root, blobs),
    )
    names: dict[str, str] = {}
    for folder, blob in olds.items():
        explicit = None
        # a broken old spec (which this range may fix) names no model: use the folder's
        with contextlib.suppress(ConfigError, KeyError):
            explicit = cache.facts(blob, f"{folder}{suffix}").name
        names[folder] = explicit or folder.rsplit("/", 1)[-1]
    return names


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
            if new.name in changed:  # (marked unless another base compares it)
                changed[new.name].renamed_from = old_name
    for folder in added:
        name = head_snap.models[folder].name
        if changed.get(name) is None or changed[name].renamed_from is None:
            mark(name, "added", None)
    return deleted


def _default_base(
    root: Path, head: str, head_sha: str, default_base: Callable[[str], str | None] | None
) -> str | None:
    """One base for every model: `default_base(head_sha)` when an ancestor of head, else
    head's first parent; None on a root commit."""
    deployed = default_base(head_sha) if default_base else None
    deployed = git.resolve(root, deployed) if deployed else None
    # head itself deployed: compare with its parent, so that running the pipeline again
    # on the same commit lists the same models (and finds every step done)
    if deployed and deployed != head_sha and git.is_ancestor(root, deployed, head_sha):
        return deployed
    return _parent(root, head, head_sha)


def _parent(root: Path, head: str, head_sha: str) -> str | None:
    parents = git.parents(root, head_sha)
    if parents:
        return parents[0]  # a merge is compared with its first parent
    if git.is_shallow(root):
        raise GitError(
            f"head {head!r} has no parent in this shallow clone, so there is nothing to "
            "compare it with; fetch more history with `git fetch --deepen=<N>` or pass --base"
        )
    return None


def _model_bases(
    root: Path, head: str, head_sha: str, names: Iterable[str], deployed: Mapping[str, str]
) -> dict[str | None, set[str]]:
    """Each model's base, models grouped by it: the commit of its last deploy when an
    ancestor of head (head itself: head's parent, as with one base); None (build it, whatever
    the commits touched) when it has none, so that a model never deployed, or whose run
    was stopped, is built by the next run."""
    groups: dict[str | None, set[str]] = defaultdict(set)
    ancestry: dict[str, bool] = {}
    parent: list[str | None] = []
    for name in names:
        commit = deployed.get(name)
        if commit == head_sha:
            if not parent:
                parent.append(_parent(root, head, head_sha))
            groups[parent[0]].add(name)
        elif commit and _cached(ancestry, commit, lambda c: git.is_ancestor(root, c, head_sha)):
            groups[commit].add(name)  # one `git merge-base` per distinct commit
        else:
            if commit and git.is_shallow(root) and git.resolve(root, commit) is None:
                # not a rewritten history but a missing one: building everything would hide it
                raise GitError(
                    f"{name} was last deployed from {commit[:12]}, which is not in this "
                    "shallow clone; fetch more history with `git fetch --deepen=<N>` or "
                    "`git fetch --unshallow` (CI: set the checkout's fetch depth to 0)"
                )
            groups[None].add(name)
    return groups


def _cached(known: dict[str, bool], key: str, work: Callable[[str], bool]) -> bool:
    if key not in known:
        known[key] = work(key)
    return known[key]


def detect(
    root: Path,
    *,
    base: str | None = None,
    head: str = "HEAD",
    default_base: Callable[[str], str | None] | None = None,
    deployed: Callable[[str], Mapping[str, str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ChangeReport:
    """The models that the commits from `base` (excluded) to `head` touch.

    Without `base`: with `deployed(head_sha)` (each model's last commit deployed to the first
    environment), every model is compared from its own (`_model_bases`), one diff per
    distinct base; else from `default_base(head_sha)` when it is an ancestor of head, else
    head's first parent. On a root commit every model counts as added.
    """
    environ = os.environ if environ is None else environ
    head_sha = _resolve_or_explain(root, head, "head")
    cache = SpecCache(root)
    head_snap = snapshot(root, head_sha, cache, environ)
    head_names = head_snap.by_name()
    groups: dict[str | None, set[str] | None]
    if base is not None:
        groups = {_resolve_or_explain(root, base, "base"): None}
    elif deployed is not None:
        groups = dict(_model_bases(root, head, head_sha, head_names, deployed(head_sha)))
    else:
        groups = {_default_base(root, head, head_sha, default_base): None}
    changed: dict[str, ChangedModel] = {}
    matcher = Matcher(head_snap)
    deleted: set[str] = set()
    for base_sha, names in groups.items():
        deleted.update(
            _compare(root, cache, environ, head_snap, matcher, base_sha, head_sha, names, changed)
        )

    uncommitted: set[str] = set()
    if head == "HEAD":  # the work tree only matters when asked about HEAD itself
        for path in git.uncommitted_paths(root):
            if path.startswith(".modelci/"):
                continue
            uncommitted.update(name for name, _reason in matcher.touches(path))
            if matcher.is_shared(path):
                uncommitted.update(e.name for e in head_snap.models.values())

    cache.save()
    bases = list(groups)
    return ChangeReport(
        base=bases[0] if len(bases) == 1 else None,  # None: from a base per model
        head=head_sha,
        changed=sorted(changed.values(), key=lambda c: c.model),
        deleted=sorted(deleted),
        uncommitted=sorted(uncommitted),
    )


def _compare(
    root: Path,
    cache: SpecCache,
    environ: Mapping[str, str],
    head_snap: Snapshot,
    matcher: Matcher,
    base_sha: str | None,
    head_sha: str,
    names: set[str] | None,
    changed: dict[str, ChangedModel],
) -> list[str]:
    """Mark the models of `names` (None: all) that base..head touches; the deleted ones."""
    head_names = head_snap.by_name()

    def mark(name: str, reason: str, path: str | None) -> None:
        if names is not None and name not in names:
            return
        if name not in changed:
            entry = head_names[name]
            changed[name] = ChangedModel(name, entry.folder, error=entry.error)
        changed[name].reasons.add(reason)
        if path:
            changed[name].files.add(path)

    if base_sha is None:
        # a root commit adds everything; a model without a deploy is built whatever changed
        reason = "added" if names is None or not git.parents(root, head_sha) else "undeployed"
        for entry in head_snap.models.values():
            mark(entry.name, reason, None)
        return []
    changes = git.diff(root, base_sha, head_sha)
    shared_paths = []
    for change in changes:
        for path in (change.path, change.old_path):
            if path is None:
                continue
            for name, why in matcher.touches(path):
                mark(name, why, path)
            if matcher.is_shared(path):
                shared_paths.append(path)
    for path in shared_paths:
        for entry in head_snap.models.values():
            mark(entry.name, "shared", path)
    return _moves(root, changes, head_snap, changed, cache, environ, base_sha, mark)
