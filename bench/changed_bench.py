"""Benchmark `modelci changed` on a generated repository of 2,000 models and 5,000 commits.

Targets (from the issue):

- over 50 commits: at most 0.5 s, and at most 5x a bare Python script that only runs
  ``git diff --name-only BASE HEAD`` over the same range (so the CLI's start-up stays lean);
- over 1,000 commits: at most 1.5 s.

Every case runs once cold (reported separately), then ``--runs`` more times; the median is compared
with the targets and with the baseline measured in the same run. The benchmark reports; it does not
gate CI: it exits 0 whatever the timings, and 1 only when a command fails (for instance while the
CLI is not there yet).

Run from the project root::

    .venv/bin/python bench/changed_bench.py [--regenerate] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_big_repo import DEFAULT_DEST, ensure_repo

BASELINE_CODE = (
    "import subprocess, sys\n"
    "subprocess.run(['git', 'diff', '--name-only', sys.argv[1], sys.argv[2]],"
    " check=True, capture_output=True)\n"
)
RANGES = {"50": 50, "1000": 1000}
MAX_SECONDS = {"50": 0.5, "1000": 1.5}
MAX_RATIO = {"50": 5.0}
TIMEOUT = 120.0


# --- timing -----------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    first: float | None = None
    runs: list[float] = field(default_factory=list)
    error: str | None = None
    stdout: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


def measure(
    name: str, argv: list[str], *, cwd: Path | None, runs: int, env: dict[str, str]
) -> Timing:
    """Run `argv` once cold, then `runs` times; stop at the first failure."""
    timing = Timing(name)
    for n in range(runs + 1):
        start = time.perf_counter()
        try:
            out = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            timing.error = f"{type(exc).__name__}: {exc}"
            return timing
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-15:]
            timing.error = f"exit {out.returncode}\n    " + "\n    ".join(tail)
            return timing
        if n == 0:
            timing.first, timing.stdout = seconds, out.stdout
        else:
            timing.runs.append(seconds)
    return timing


# --- the expected answer, computed independently ----------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Repo-root relative glob: `**` any depth (including none), `*` and `?` within one segment."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=True
    ).stdout


def read_blobs(repo: Path, rev: str, paths: list[str]) -> dict[str, str]:
    """Contents of `paths` at `rev`, in one `git cat-file --batch` call."""
    raw = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        input="".join(f"{rev}:{p}\n" for p in paths).encode(),
        capture_output=True,
        check=True,
    ).stdout
    blobs, pos = {}, 0
    for path in paths:
        eol = raw.index(b"\n", pos)
        size = int(raw[pos:eol].split()[2])
        blobs[path] = raw[eol + 1 : eol + 1 + size].decode()
        pos = eol + 1 + size + 1
    return blobs


@dataclass
class Model:
    name: str
    folder: str
    depends_on: list[re.Pattern[str]]


def load_models(repo: Path, rev: str) -> tuple[list[Model], list[re.Pattern[str]]]:
    project = tomllib.loads(read_blobs(repo, rev, ["modelci.toml"])["modelci.toml"])["project"]
    model_globs = [glob_regex(g + "/model.toml") for g in project.get("models", ["models/*"])]
    shared = [glob_regex(g) for g in project.get("shared", [])]
    tomls = [
        p
        for p in git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()
        if any(g.fullmatch(p) for g in model_globs)
    ]
    models = []
    for path, text in read_blobs(repo, rev, tomls).items():
        folder = path.rsplit("/", 1)[0]
        spec = tomllib.loads(text).get("model", {})
        name = spec.get("name") or folder.rsplit("/", 1)[-1]
        models.append(Model(name, folder, [glob_regex(g) for g in spec.get("depends_on", [])]))
    return models, shared


def expected_changed(
    files: list[str], models: list[Model], shared: list[re.Pattern[str]]
) -> set[str]:
    if any(g.fullmatch(f) for g in shared for f in files):
        return {m.name for m in models}
    return {
        m.name
        for m in models
        if any(
            f.startswith(m.folder + "/") or any(g.fullmatch(f) for g in m.depends_on) for f in files
        )
    }


def names_of(items: object) -> set[str] | None:
    """Model names from the JSON `changed` value: a list of names or of objects with a name."""
    if not isinstance(items, list):
        return None
    names = set()
    for item in items:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and isinstance(item.get("name", item.get("model")), str):
            names.add(item.get("name", item.get("model")))
        else:
            return None
    return names


def check_output(stdout: str, expected: set[str]) -> tuple[bool, str]:
    try:
        doc = json.loads(stdout)
    except ValueError as exc:
        return False, f"stdout is not JSON ({exc}): {stdout[:200]!r}"
    if not isinstance(doc, dict):
        return False, f"JSON is not an object: {stdout[:200]!r}"
    missing = [k for k in ("base", "head", "changed", "deleted", "uncommitted") if k not in doc]
    if missing:
        return False, f"JSON lacks keys {missing}; has {sorted(doc)}"
    got = names_of(doc["changed"])
    if got is None:
        return False, f"cannot read model names from 'changed': {str(doc['changed'])[:200]}"
    notes = []
    if doc["deleted"]:
        notes.append(f"unexpected deleted={str(doc['deleted'])[:100]}")
    if got != expected:
        extra, lack = sorted(got - expected), sorted(expected - got)
        return False, (
            f"changed models differ: {len(got)} reported, {len(expected)} expected; "
            f"extra {extra[:8]}{'...' if len(extra) > 8 else ''}, "
            f"missing {lack[:8]}{'...' if len(lack) > 8 else ''}"
        )
    return True, f"{len(got)} models, as expected" + (f" ({'; '.join(notes)})" if notes else "")


# --- main -------------------------------------------------------------------------------------


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help="rebuild the cached repository")
    parser.add_argument("--repo", type=Path, default=DEFAULT_DEST, help="where to keep it")
    parser.add_argument("--runs", type=int, default=7, help="timed runs after the cold one")
    parser.add_argument(
        "--modelci", default=str(Path(sys.executable).parent / "modelci"), help="the CLI to time"
    )
    args = parser.parse_args(argv)

    repo, generated = ensure_repo(args.repo.resolve(), regenerate=args.regenerate)
    how = "cached" if generated is None else f"generated in {generated:.2f} s"
    commits = git(repo, "rev-list", "--count", "HEAD").strip()
    print(f"repository: {repo} ({how}; {commits} commits)")
    # as on a user's machine: Python keeps bytecode caches (a CI image or sandbox that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time the compiling of every module, every run)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NO_COLOR"] = "1"
    head = git(repo, "rev-parse", "HEAD").strip()
    models, shared = load_models(repo, head)
    print(f"models at HEAD: {len(models)}; python: {sys.executable}; runs: 1 cold + {args.runs}")

    cli_ok = True
    probe = measure("probe", [args.modelci, "changed", "--help"], cwd=repo, runs=0, env=env)
    if probe.error:
        cli_ok = False
        print(
            f"\nmodelci is not usable yet: `{args.modelci} changed --help` failed:\n"
            f"    {probe.error}\nOnly the baselines are measured.",
            file=sys.stderr,
        )

    rows: list[tuple[str, Timing, str, float | None, str, str]] = []
    failed = not cli_ok
    checks = []
    for key, depth in RANGES.items():
        base = git(repo, "rev-parse", f"HEAD~{depth}").strip()
        files = git(repo, "diff", "--name-only", base, head).splitlines()
        expected = expected_changed(files, models, shared)
        touched_shared = any(g.fullmatch(f) for g in shared for f in files)
        print(
            f"range HEAD~{depth}..HEAD: {len(files)} files changed, {len(expected)} models expected"
            + (" (shared files touched: every model)" if touched_shared else "")
        )

        git_only = measure(
            f"git diff ({depth})",
            ["git", "diff", "--name-only", base, head],
            cwd=repo,
            runs=args.runs,
            env=env,
        )
        baseline = measure(
            f"baseline ({depth})",
            [sys.executable, "-c", BASELINE_CODE, base, head],
            cwd=repo,
            runs=args.runs,
            env=env,
        )
        rows.append((git_only.name, git_only, "", None, "(info: git alone)", ""))
        rows.append((baseline.name, baseline, "", None, "(reference)", ""))
        failed |= bool(git_only.error or baseline.error)
        if not cli_ok:
            continue

        cli = measure(
            f"changed ({depth})",
            [args.modelci, "-C", str(repo), "changed", "--base", base, "--head", head, "--json"],
            cwd=None,
            runs=args.runs,
            env=env,
        )
        ratio = cli.median / baseline.median if cli.median is not None and baseline.median else None
        target = f"<= {MAX_SECONDS[key]} s" + (
            f", <= {MAX_RATIO[key]:g}x" if key in MAX_RATIO else ""
        )
        if cli.error or cli.median is None:
            verdict = "ERROR"
            failed = True
        else:
            ok = cli.median <= MAX_SECONDS[key]
            if key in MAX_RATIO:
                ok = ok and ratio is not None and ratio <= MAX_RATIO[key]
            verdict = "PASS" if ok else "FAIL"
            good, note = check_output(cli.stdout, expected)
            checks.append(f"{cli.name}: output {'OK' if good else 'MISMATCH'}: {note}")
        rows.append((cli.name, cli, "", ratio, target, verdict))

    print()
    header = f"{'case':<16} {'cold s':>7} {'median s':>8} {'min s':>6} {'ratio':>6}  "
    header += f"{'target':<18} result"
    print(header)
    print("-" * len(header))
    for name, t, _, ratio, target, verdict in rows:
        if t.error:
            print(f"{name:<16} {'-':>7} {'-':>8} {'-':>6} {'-':>6}  {target:<18} ERROR")
            continue
        low = min(t.runs) if t.runs else None
        r = "-" if ratio is None else f"{ratio:.2f}x"
        print(
            f"{name:<16} {fmt(t.first):>7} {fmt(t.median):>8} {fmt(low):>6} {r:>6}  "
            f"{target:<18} {verdict}"
        )
    print("\nratio = median of `modelci changed` / median of the bare-Python baseline, same range")
    for line in checks:
        print(line)
    for _, t, *_ in rows:
        if t.error:
            print(f"\n{t.name} failed: {t.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
