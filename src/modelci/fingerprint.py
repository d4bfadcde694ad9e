"""The fingerprint: a sha256 over everything that decides a trained model.

The model folder's files, the files its `depends_on` and the project's `shared` globs match,
the lock, the hyperparameters, the seed and the content of every channel. Two commits with
one fingerprint train the same model, so the second reuses the first one's artifact.
File contents enter as digests: git's blob ids for a commit, sha256 for a dirty work tree.

What decides whether a version may ship, not what training makes, stays out: `model.toml`
enters as its validated spec without `[gates]`, `[tests]` and `[deploy]` (its rollout), and
the golden file not at all, so that a commit changing only those tests the existing artifact
again (as a new version on it) instead of training again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.settings import MODEL_FILE, glob_regex

if TYPE_CHECKING:
    from modelci.spec import ModelSpec

VERSION = "2"  # bump when what enters the fingerprint changes


def file_digests(root: Path, files: list[str]) -> dict[str, str]:
    """sha256 of each work-tree file (for `--dirty` training)."""
    digests: dict[str, str] = {}
    for relative in files:
        path = root / relative
        if path.is_file():
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


DEFAULT_GOLDEN = "tests/golden.jsonl"  # the golden file when `[tests].golden` names none
_CHECKS = ("gates", "tests")  # the spec's sections that judge a version, not make it
_SHIPPING = ("deploy",)  # how a version is rolled out: neither makes nor judges it


@dataclass(frozen=True)
class FingerprintInputs:
    """What of a spec enters the fingerprint: from a validated ModelSpec, or from the
    validated dump the spec cache keeps when a cache hit is to be told without pydantic."""

    folder: str
    depends_on: tuple[str, ...]
    channels: dict[str, str]
    hyperparameters: dict[str, Any]
    seed: int
    entrypoint: str
    spec_digest: str  # the validated spec without [gates] and [tests]
    golden: str  # the golden file, relative to the folder: left out

    @classmethod
    def of(cls, spec: ModelSpec) -> FingerprintInputs:
        return cls.of_dump(spec.folder, spec.file.model_dump(mode="json"))

    @classmethod
    def of_dump(cls, folder: str, dump: Mapping[str, Any]) -> FingerprintInputs:
        """From a validated `model.toml`'s JSON dump (spec.py's, or the spec cache's)."""
        made = {k: v for k, v in dump.items() if k not in (*_CHECKS, *_SHIPPING)}
        serve = made.get("serve")
        if isinstance(serve, dict):
            # [serve] keys added later, when unset, leave the digest as it was made before they
            # existed: an upgrade retrains nothing
            unset = {
                "capture": not (serve.get("capture") or {}).get("percent"),
                "isolation": serve.get("isolation") is None,
            }
            made["serve"] = {k: v for k, v in serve.items() if not unset.get(k, False)}
        train = dump["train"]
        return cls(
            folder,
            tuple(dump["model"]["depends_on"]),
            dict(train["channels"]),
            dict(train["hyperparameters"]),
            train["seed"],
            train["entrypoint"],
            hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest(),
            (dump.get("tests") or {}).get("golden") or DEFAULT_GOLDEN,
        )


def checks_digest(dump: Mapping[str, Any], golden: bytes | None) -> str:
    """What decides whether a version may ship, left out of the fingerprint: the validated
    spec's `[gates]` and `[tests]` and the golden file's content (None: no golden file)."""
    hasher = hashlib.sha256(json.dumps({k: dump.get(k) for k in _CHECKS}, sort_keys=True).encode())
    hasher.update(b"-" if golden is None else hashlib.sha256(golden).hexdigest().encode())
    return hasher.hexdigest()


def fingerprint(
    tree: Mapping[str, str],
    model: ModelSpec | FingerprintInputs,
    *,
    shared: list[str],
    lock_hash: str,
) -> str:
    """The fingerprint of `model` given `tree` (path -> content digest) and its lock's hash."""
    inputs = model if isinstance(model, FingerprintInputs) else FingerprintInputs.of(model)
    folder = inputs.folder + "/"
    globs = [glob_regex(p) for p in (*inputs.depends_on, *shared)]
    channel_paths = {
        name: source.strip("/") for name, source in inputs.channels.items() if "://" not in source
    }
    sections: dict[str, list[str]] = {"folder": [], "depends": [], "channels": []}
    for path in sorted(tree):
        digest = tree[path]
        if path.startswith(folder):
            inside = path[len(folder) :]
            if inside == inputs.golden:
                continue
            if inside == MODEL_FILE:
                digest = inputs.spec_digest
            sections["folder"].append(f"{inside}\0{digest}")
        elif any(g.fullmatch(path) for g in globs):
            sections["depends"].append(f"{path}\0{digest}")
        for name, source in channel_paths.items():
            if path == source or path.startswith(source + "/"):
                sections["channels"].append(f"{name}\0{path}\0{digest}")
    uris = {n: s for n, s in inputs.channels.items() if "://" in s}
    header = {
        "fingerprint": VERSION,
        "lock": lock_hash,
        "hyperparameters": inputs.hyperparameters,
        "seed": inputs.seed,
        "entrypoint": inputs.entrypoint,
        "uri_channels": uris,
    }
    hasher = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for name in ("folder", "depends", "channels"):
        hasher.update(f"\n[{name}]\n".encode())
        hasher.update("\n".join(sections[name]).encode())
    return hasher.hexdigest()
