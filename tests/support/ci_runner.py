"""A throw-away CI runner for the configurations `modelci ci-config` writes: it reads the
generated YAML and runs its `run:` steps in order, in a fresh clone and a new virtualenv, as
GitHub Actions or CircleCI would.

What the steps that are not shell commands do is done here, as their actions do it: `checkout`
clones the origin with its full history and tags; `setup-python` is a new virtualenv of this
interpreter's Python; the caches restore nothing (a throw-away runner's first run) and save
nothing; the AWS credential steps (OIDC) are stood in for by the emulator's credentials, given as
the job's environment. Every other step kind is an error, so that a generated file that grows a
step this runner does not know fails the test instead of being skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

# `uses:` actions (GitHub) and step kinds (CircleCI) this runner stands in for, by prefix
GITHUB_ACTIONS = (
    "actions/checkout@",
    "actions/setup-python@",
    "actions/cache@",
    "aws-actions/configure-aws-credentials@",
)
CIRCLECI_STEPS = ("checkout", "restore_cache", "save_cache", "aws-cli/setup")
STEP_TIMEOUT_S = 900.0


@dataclass
class Step:
    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class JobRun:
    """One job's run: each shell step's name, exit code, output and seconds taken."""

    results: list[tuple[str, int, str, float]]

    @property
    def ok(self) -> bool:
        return all(code == 0 for _, code, _, _ in self.results)

    def log(self) -> str:
        return "\n".join(
            f"--- {name}: exit {code} after {seconds:.1f} s\n{out}"
            for name, code, out, seconds in self.results
        )


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _expand(value: str, expressions: dict[str, str]) -> str:
    """GitHub's `${{ name }}` expressions, from `expressions`; an unknown one is an error."""

    def substitute(match: re.Match[str]) -> str:
        return expressions[match.group(1).strip()]

    return re.sub(r"\$\{\{([^}]*)\}\}", substitute, value)


def github_job(
    text: str, job: str, expressions: dict[str, str]
) -> tuple[dict[str, str], list[Step]]:
    """The workflow's environment and `job`'s shell steps, expressions expanded."""
    workflow = _load(text)
    environment = {k: _expand(str(v), expressions) for k, v in workflow.get("env", {}).items()}
    steps: list[Step] = []
    for step in workflow["jobs"][job]["steps"]:
        if "uses" in step:
            if not str(step["uses"]).startswith(GITHUB_ACTIONS):
                raise AssertionError(f"this runner does not know the action {step['uses']}")
            continue
        env = {k: _expand(str(v), expressions) for k, v in step.get("env", {}).items()}
        steps.append(Step(step.get("name", step["run"][:40]), step["run"], env))
    return environment, steps


def circleci_job(text: str, job: str) -> list[Step]:
    """`job`'s shell steps, its reusable commands expanded in place."""
    config = _load(text)
    commands = config.get("commands", {})

    def expand(steps: list[Any]) -> list[Step]:
        found: list[Step] = []
        for step in steps:
            if isinstance(step, str):
                if step in commands:
                    found += expand(commands[step]["steps"])
                elif step not in CIRCLECI_STEPS:
                    raise AssertionError(f"this runner does not know the step {step}")
                continue
            ((kind, body),) = step.items()
            if kind == "run":
                found.append(Step(body.get("name", body["command"][:40]), body["command"]))
            elif kind in commands:
                found += expand(commands[kind]["steps"])
            elif kind not in CIRCLECI_STEPS:
                raise AssertionError(f"this runner does not know the step {kind}")
        return found

    return expand(config["jobs"][job]["steps"])


def new_runner(folder: Path, origin: Path, ref: str, environ: dict[str, str]) -> dict[str, str]:
    """A fresh runner in `folder`: a full clone of `origin` at `ref` in `folder/work` and a new
    virtualenv first on PATH (what checkout and setup-python do). Returns the job's environment."""
    folder.mkdir(parents=True)
    subprocess.run(
        ["git", "clone", "-q", "--no-local", str(origin), str(folder / "work")], check=True
    )
    subprocess.run(["git", "-C", str(folder / "work"), "checkout", "-q", ref], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    (folder / "home").mkdir()
    return {
        **environ,
        "HOME": str(folder / "home"),
        "PATH": f"{folder / 'venv' / 'bin'}{os.pathsep}{environ['PATH']}",
        "VIRTUAL_ENV": str(folder / "venv"),
    }


def run_job(steps: list[Step], cwd: Path, environ: dict[str, str]) -> JobRun:
    """Each step under `bash -eo pipefail`, in order, stopping at the first failure."""
    results: list[tuple[str, int, str, float]] = []
    for step in steps:
        start = time.monotonic()
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step.script],
            cwd=cwd,
            env={**environ, **step.env},
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
        output = done.stdout + done.stderr
        results.append((step.name, done.returncode, output, time.monotonic() - start))
        if done.returncode != 0:
            break
    return JobRun(results)
