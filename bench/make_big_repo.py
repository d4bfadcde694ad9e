"""Generate a large, deterministic model repository for the `modelci changed` benchmark.

The repository has 2,000 models (``models/m0000`` .. ``models/m1999``), 20 feature groups under
``lib/features``, a shared ``lib/common/util.py`` and 5,000 commits on ``main``. It is written with
one ``git fast-import`` stream instead of thousands of ``git commit`` calls, then checked out.

The result is cached: a marker file records the generation parameters, and the repository is only
rebuilt when the marker is missing, the parameters changed, or ``regenerate=True``.

Run alone::

    .venv/bin/python bench/make_big_repo.py [--regenerate] [--dest bench/.work/big-repo]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent / ".work" / "big-repo"
MARKER = ".bench-generated.json"
GENERATOR_VERSION = 3

AUTHOR = "Bench Bot <bench@example.invalid>"
EPOCH = 1_700_000_000  # fixed start date; commit i is dated EPOCH + 60 * i


@dataclass(frozen=True)
class Params:
    models: int = 2000
    commits: int = 5000
    groups: int = 20
    files_per_group: int = 5
    seed: int = 20240611
    version: int = GENERATOR_VERSION


def model_name(i: int) -> str:
    return f"m{i:04d}"


def group_of(i: int, p: Params) -> str:
    return f"group{i % p.groups:02d}"


def model_toml(i: int, p: Params, revision: int | None = None) -> str:
    name = model_name(i)
    head = f"# revision {revision}\n" if revision is not None else ""
    return (
        f"{head}[model]\n"
        f'name = "{name}"\n'
        f'depends_on = ["lib/features/{group_of(i, p)}/**", "data/{name}/*.csv"]\n'
        "\n"
        "[train]\n"
        'entrypoint = "train.py"\n'
    )


def train_py(i: int, revision: int = 0) -> str:
    return f'# model {model_name(i)}, revision {revision}\nprint("accuracy=0.9")\n'


def train_csv(i: int, revision: int = 0) -> str:
    return f"x,y\n{i},{revision}\n{revision},{i}\n"


def feature_py(group: int, k: int, revision: int = 0) -> str:
    return f"# features group{group:02d} file {k}, revision {revision}\nSCALE = {revision}\n"


def common_py(revision: int = 0) -> str:
    return f"# shared helpers, revision {revision}\nVERSION = {revision}\n"


MODELCI_TOML = '[project]\nmodels = ["models/*"]\nshared = ["lib/common/**"]\n'


def initial_files(p: Params) -> dict[str, str]:
    files = {
        ".gitignore": ".modelci/\n",  # what `modelci` writes locally must not dirty the tree
        "modelci.toml": MODELCI_TOML,
        "lib/common/util.py": common_py(),
    }
    for g in range(p.groups):
        for k in range(p.files_per_group):
            files[f"lib/features/group{g:02d}/feat{k}.py"] = feature_py(g, k)
    for i in range(p.models):
        name = model_name(i)
        files[f"models/{name}/model.toml"] = model_toml(i, p)
        files[f"models/{name}/train.py"] = train_py(i)
        files[f"data/{name}/train.csv"] = train_csv(i)
    return files


def pick_change(rng: random.Random, p: Params, revision: int) -> tuple[str, str]:
    """One modified file (path, new content) for a later commit."""
    r = rng.random()
    if r < 0.002:  # very rarely: the shared library, which marks every model changed
        return "lib/common/util.py", common_py(revision)
    if r < 0.03:  # sometimes: one feature group file (marks the group's 100 models)
        g, k = rng.randrange(p.groups), rng.randrange(p.files_per_group)
        return f"lib/features/group{g:02d}/feat{k}.py", feature_py(g, k, revision)
    i = rng.randrange(p.models)
    name = model_name(i)
    if r < 0.45:
        return f"data/{name}/train.csv", train_csv(i, revision)
    if r < 0.80:
        return f"models/{name}/train.py", train_py(i, revision)
    return f"models/{name}/model.toml", model_toml(i, p, revision)


def _data(chunks: list[bytes], payload: bytes) -> None:
    chunks.append(b"data %d\n" % len(payload))
    chunks.append(payload)
    chunks.append(b"\n")


def _commit(chunks: list[bytes], n: int, message: str, files: dict[str, str]) -> None:
    when = f"{EPOCH + 60 * n} +0000"
    chunks.append(f"commit refs/heads/main\nmark :{n + 1}\n".encode())
    chunks.append(f"author {AUTHOR} {when}\ncommitter {AUTHOR} {when}\n".encode())
    _data(chunks, message.encode())
    for path, content in files.items():
        chunks.append(f"M 100644 inline {path}\n".encode())
        _data(chunks, content.encode())


def build_stream(p: Params) -> bytes:
    rng = random.Random(p.seed)
    chunks: list[bytes] = []
    _commit(chunks, 0, "Initial commit: 2,000 models", initial_files(p))
    for n in range(1, p.commits):
        files: dict[str, str] = {}
        for _ in range(rng.randint(1, 5)):
            path, content = pick_change(rng, p, n)
            files[path] = content  # the same file twice in one commit: last content wins
        _commit(chunks, n, f"Commit {n}: change {len(files)} file(s)", files)
    chunks.append(b"done\n")
    return b"".join(chunks)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.decode(errors='replace')}")
    return out.stdout.decode()


def _is_current(dest: Path, p: Params) -> bool:
    marker = dest / ".git" / MARKER
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("params") == asdict(p) and (dest / "modelci.toml").is_file()


def generate(dest: Path, p: Params) -> float:
    """Build the repository at `dest` from scratch; return the seconds it took."""
    start = time.perf_counter()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _git(dest, "init", "--quiet", "--initial-branch=main")
    for key, value in [("user.name", "Bench Bot"), ("user.email", "bench@example.invalid"),
                       ("gc.auto", "0"), ("core.autocrlf", "false")]:  # fmt: skip
        _git(dest, "config", key, value)
    _git(dest, "fast-import", "--quiet", "--done", stdin=build_stream(p))
    _git(dest, "checkout", "--quiet", "--force", "main")
    count = int(_git(dest, "rev-list", "--count", "HEAD").strip())
    if count != p.commits:
        raise RuntimeError(f"expected {p.commits} commits, found {count}")
    seconds = time.perf_counter() - start
    head = _git(dest, "rev-parse", "HEAD").strip()
    info = {"params": asdict(p), "head": head, "seconds": round(seconds, 3)}
    (dest / ".git" / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    return seconds


def ensure_repo(
    dest: Path = DEFAULT_DEST, *, regenerate: bool = False, params: Params | None = None
) -> tuple[Path, float | None]:
    """Return (repository path, generation seconds or None when the cached copy was reused)."""
    p = params or Params()
    if not regenerate and _is_current(dest, p):
        return dest, None
    return dest, generate(dest, p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--regenerate", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    repo, seconds = ensure_repo(args.dest, regenerate=args.regenerate)
    if seconds is None:
        print(f"{repo}: up to date (cached)")
    else:
        print(f"{repo}: generated in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
