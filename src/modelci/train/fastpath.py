"""`train`'s quick answers, through the spec cache and sqlite3 alone (no pydantic, no
SQLAlchemy): whether a job must run, and a version already trained or one with the same
fingerprint, told and recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelci import git
from modelci.fingerprint import fingerprint
from modelci.progress import Progress
from modelci.settings import MODEL_FILE
from modelci.train.outcome import TrainOutcome, outcome, version_name
from modelci.train.record import reuse_record
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.envs.uv import ModelRef
    from modelci.fingerprint import FingerprintInputs


def must_train(
    workspace: Workspace, model: str, version: str, fingerprint: str, force: bool
) -> bool:
    """Whether an SQLite registry already says, without SQLAlchemy, that this version must be
    trained (no record, or a failed one, and no version with its fingerprint); False when in
    doubt, and the full bookkeeping decides."""
    from modelci.registry.quick import quick_look

    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is None:
        return False
    try:
        status = look.version_status(version)
        if force:  # trained anyway, unless another pipeline trains it now (its lease decides)
            return status != "training"
        if status not in (None, "failed"):
            return False
        return look.ready_with_fingerprint(model, fingerprint) is None
    finally:
        look.close()


def _validated_inputs(
    workspace: Workspace, name: str, commit: str
) -> tuple[ModelRef, FingerprintInputs] | None:
    """The model's ModelRef and FingerprintInputs at the commit, from the spec cache (spec.py
    validates a blob not seen yet); None when no model has that name there. An invalid spec
    is its ConfigError, as `validate` reports it."""
    import os

    from modelci.changes import SpecCache, snapshot
    from modelci.envs.uv import ModelRef
    from modelci.fingerprint import FingerprintInputs

    cache = SpecCache(workspace.root)
    entry = snapshot(workspace.root, commit, cache, os.environ).by_name().get(name)
    cache.save()
    if entry is None:
        return None
    spec_file = f"{entry.folder}/{MODEL_FILE}"
    blob = git.tree_blobs(workspace.root, commit)[spec_file]
    facts = cache.facts(blob, spec_file)
    return (
        ModelRef(name, entry.folder, facts.requirements),
        FingerprintInputs.of_dump(entry.folder, cache.dump(blob, spec_file)),
    )


def fingerprint_at(workspace: Workspace, name: str, commit: str) -> str | None:
    """The fingerprint the model's content at a commit has (a version with it was trained from
    that content); None when no model has that name there. An invalid spec is its
    ConfigError."""
    from modelci.envs.uv import ensure_environment

    raw = _validated_inputs(workspace, name, commit)
    if raw is None:
        return None
    ref, inputs = raw
    return fingerprint(
        git.tree_blobs(workspace.root, commit),
        inputs,
        shared=workspace.project_shared(),
        lock_hash=ensure_environment(workspace.root, ref).lock_hash,
    )


def checks_at(workspace: Workspace, name: str, commit: str) -> str | None:
    """The digest of what judges the model at a commit (fingerprint.checks_digest); None when
    no model has that name there."""
    import os

    from modelci.changes import SpecCache, snapshot
    from modelci.fingerprint import FingerprintInputs, checks_digest

    cache = SpecCache(workspace.root)
    entry = snapshot(workspace.root, commit, cache, os.environ).by_name().get(name)
    if entry is None:
        return None
    tree = git.tree_blobs(workspace.root, commit)
    spec_file = f"{entry.folder}/{MODEL_FILE}"
    dump = cache.dump(tree[spec_file], spec_file)
    golden = tree.get(f"{entry.folder}/{FingerprintInputs.of_dump(entry.folder, dump).golden}")
    text = git.read_blobs(workspace.root, [golden])[golden] if golden else None
    return checks_digest(dump, text)


def cache_hit(workspace: Workspace, name: str, commit: str, note: Progress) -> TrainOutcome | None:
    """A version already trained, or one with the same fingerprint, told and (on an SQLite
    registry) recorded without pydantic or SQLAlchemy: the spec is read as validated from the
    spec cache (an invalid one is its ConfigError). None when in doubt (and the validated path
    decides)."""
    from modelci.envs.uv import ensure_environment
    from modelci.registry.quick import quick_look

    look = quick_look(workspace.project_url("registry"), workspace.root)
    if look is None:
        return None
    try:
        raw = _validated_inputs(workspace, name, commit)
        if raw is None:
            return None
        ref, inputs = raw
        version = version_name(name, commit)
        existing = look.version(version)
        environment = ensure_environment(workspace.root, ref)
        if existing is not None:
            if existing.status != "ready":
                return None
            note(f"{version}: already trained")
            return outcome(existing, cached=True)
        print_ = fingerprint(
            git.tree_blobs(workspace.root, commit),
            inputs,
            shared=workspace.project_shared(),
            lock_hash=environment.lock_hash,
        )
        found = look.ready_with_fingerprint(name, print_)
        match = None if found in (None, version) else look.version(found)
    finally:
        look.close()
    if match is None or match.status != "ready":
        return None
    from modelci.registry.quick import add_reused_version

    record, event = reuse_record(
        workspace, name, version, commit, print_, match, environment.lock_hash, dirty=False
    )
    stored = add_reused_version(
        workspace.project_url("registry"), workspace.root, record, event, match
    )
    if stored is None:  # the registry changed meanwhile: the validated path decides afresh
        return None
    note(f"{version}: reused from {match.version} (same fingerprint)")
    return outcome(stored, reused_from=match.version)
