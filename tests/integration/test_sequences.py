"""Generated sequences of what real teams do, on a real repository with two toy models: change
a model, break one (a gate it cannot pass, a missing train.py), fix it, revert a commit, merge
without a pipeline run (a run killed), tag and release, roll production back. After each step
the registry is checked against a simple model of what staging and production should hold,
and against the invariants: every model on main eventually gets a ready version, and a
release never picks a version whose tests failed."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.ports import free_port
from tests.support.repos import GitRepo
from tests.support.toy import INFERENCE, SERVED_SPEC, toy_rows, train_script

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]
REGISTRY = "sqlite:///.modelci/registry.db"
MODELS = ("alpha", "beta")
SEEDS = (1, 2, 3)
STEPS = 12
SPEC = SERVED_SPEC + '\n[gates]\nscore = "{gate}"\n'


@dataclass
class Expected:
    """What the sequence has done so far, as the test's own simple model."""

    # commit -> model -> "good" | "gate" (a gate it cannot pass) | "untrainable"
    states: dict[str, dict[str, str]] = field(default_factory=dict)
    # model -> the content (git tree of its folder) of every version whose tests passed
    passed: dict[str, set[str]] = field(default_factory=lambda: {m: set() for m in MODELS})
    # model -> every version production has served
    served: dict[str, list[str]] = field(default_factory=lambda: {m: [] for m in MODELS})
    tags: int = 0


class Sequence:
    """One generated sequence: its repository, its random choices and its checks."""

    def __init__(self, root: Path, modelci: Run, seed: int):
        self.repo = GitRepo(root)
        self.modelci = modelci
        self.random = random.Random(seed)
        self.expected = Expected()
        self.log: list[str] = [f"seed {seed}"]

    # -- the repository ------------------------------------------------------------------------

    def write(self, model: str, state: str) -> None:
        gate = ">= 0.9" if state == "gate" else ">= 0.5"
        bias = self.random.choice((0.5, 1.5, 2.5, 3.5))
        self.repo.write(f"models/{model}/model.toml", SPEC.format(bias=bias, gate=gate))
        train = self.repo.root / f"models/{model}/train.py"
        if state == "untrainable":
            train.unlink(missing_ok=True)
        else:
            train.write_text(train_script())
        self.repo.write(f"models/{model}/inference.py", INFERENCE)
        self.repo.write(f"models/{model}/requirements.txt", "")

    def commit(self, message: str, states: dict[str, str]) -> str:
        sha = self.repo.commit(message)
        self.expected.states[sha] = dict(states)
        return sha

    def content(self, commit: str, model: str) -> str:
        return self.repo.git("rev-parse", f"{commit}:models/{model}")

    def head_states(self) -> dict[str, str]:
        return self.expected.states[self.repo.sha()]

    # -- the CLI and the registry --------------------------------------------------------------

    def cli(self, *args: str) -> CliResult:
        result = self.modelci("-C", self.repo.root, *args, "--json")
        assert result.code in (0, 1, 2), self.trail(result.stdout + result.stderr)
        return result

    def record(self, version: str) -> Any:
        with open_registry(REGISTRY, self.repo.root) as registry:
            return registry.get_version(version)

    def pointer(self, model: str, environment: str) -> str | None:
        with open_registry(REGISTRY, self.repo.root) as registry:
            pointer = registry.get_pointer(model, environment)
            return pointer.version if pointer else None

    def trail(self, text: str = "") -> str:
        return "\n".join([*self.log, text])

    # -- the steps -----------------------------------------------------------------------------

    def setup(self) -> None:
        self.repo.write(".gitignore", ".modelci/\n")
        self.repo.write("data/toy/train.csv", toy_rows(20))
        self.repo.write("data/toy/test.csv", toy_rows(20))
        for model in MODELS:
            self.write(model, "good")
        self.commit("two models", dict.fromkeys(MODELS, "good"))
        self.log.append("setup")
        self.run()

    def step(self) -> None:
        states = dict(self.head_states())
        model = self.random.choice(MODELS)
        broken = [m for m in MODELS if states[m] != "good"]
        choices = ["change", "change", "gate", "untrainable", "revert", "unrun", "release"]
        choices += ["fix"] * 2 * bool(broken) + ["rollback"] * any(self.expected.served.values())
        action = self.random.choice(choices)
        self.log.append(f"{action} {model}")
        if action == "fix":
            model = self.random.choice(broken)
            self.log[-1] = f"fix {model}"
        elif action in ("revert", "release"):
            self.log[-1] = action
        if action in ("change", "fix", "unrun", "gate", "untrainable"):
            state = action if action in ("gate", "untrainable") else "good"
            self.write(model, state)
            self.commit(f"{action} {model}", {**states, model: state})
            if action != "unrun":  # a merge whose pipeline was killed before it began
                self.run()
        elif action == "revert":
            if self.repo.git("rev-list", "--count", "HEAD") == "1":
                return
            parent = self.repo.sha("HEAD^")
            self.repo.git("revert", "--no-edit", "HEAD")
            self.expected.states[self.repo.sha()] = dict(self.expected.states[parent])
            self.run()
        elif action == "release":
            self.release()
        else:
            self.rollback(model)

    def run(self) -> None:
        head = self.repo.sha()
        states = self.head_states()
        before = {m: self.pointer(m, "staging") for m in MODELS} if self.has_registry() else {}
        result = self.cli("run")
        rows = {m["model"]: m for m in result.json()["models"]}
        for model in MODELS:
            staged = self.pointer(model, "staging")
            if states[model] == "good":
                # invariant 1: every model on main has a ready version of its content, served
                assert staged is not None, self.trail(f"{model}: nothing in staging")
                record = self.record(staged)
                assert self.content(record.commit, model) == self.content(head, model), self.trail(
                    f"{model}: staging serves {staged}, not the content at head"
                )
                assert record.details["tests"]["passed"] is True
                self.expected.passed[model].add(self.content(head, model))
                assert rows.get(model, {"status": "done"})["status"] == "done", self.trail()
            else:
                assert rows[model]["status"] == "failed", self.trail(f"{model}: {rows}")
                assert staged == before.get(model), self.trail(f"{model}: staging moved")
        assert result.code == (0 if all(s == "good" for s in states.values()) else 1)

    def has_registry(self) -> bool:
        return (self.repo.root / ".modelci" / "registry.db").exists()

    def release(self) -> None:
        self.expected.tags += 1
        tag = f"v{self.expected.tags}"
        self.repo.git("tag", tag)
        head = self.repo.sha()
        states = self.head_states()
        result = self.cli("release", tag)
        released = {m["model"]: m for m in result.json()["models"]}
        for model in MODELS:
            entry = released[model]
            if entry["version"] is not None and entry["status"] in ("deployed", "unchanged"):
                record = self.record(entry["version"])
                # invariant: a release never picks a version whose tests failed
                assert record.details["tests"]["passed"] is True, self.trail(str(entry))
                if entry["status"] == "deployed":
                    self.expected.served[model].append(entry["version"])
            tested = self.content(head, model) in self.expected.passed[model]
            if states[model] == "good" and tested:
                assert entry["status"] in ("deployed", "unchanged"), self.trail(str(entry))
                record = self.record(entry["version"])
                assert self.content(record.commit, model) == self.content(head, model)
            elif states[model] != "gate":
                # never trained and tested with this content (a run was killed, or it breaks)
                assert entry["status"] == "missing", self.trail(str(entry))
                assert "modelci run" in entry["reason"]
            live = entry["status"] in ("deployed", "unchanged")
            wanted = entry["version"] if live else entry["previous_version"]
            assert self.pointer(model, "production") == wanted, self.trail(str(entry))

    def rollback(self, model: str) -> None:
        before = self.pointer(model, "production")
        result = self.cli("rollback", model, "--env", "production")
        after = self.pointer(model, "production")
        if result.code == 0:
            assert after in self.expected.served[model] and after != before, self.trail()
            assert self.record(after).details["tests"]["passed"] is True
        else:
            assert result.code == 2 and after == before, self.trail(result.stdout)


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_sequences_keep_the_invariants(
    git_repo: Callable[..., GitRepo], modelci: Run, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(free_port()))
    sequence = Sequence(git_repo().root, modelci, seed)
    try:
        sequence.setup()
        for _ in range(STEPS):
            sequence.step()
        # eventually: once every model is fixed, one run gives each a ready version of head
        states = sequence.head_states()
        broken = [m for m in MODELS if states[m] != "good"]
        for model in broken:
            sequence.write(model, "good")
        if broken:
            sequence.log.append(f"fix {', '.join(broken)}")
            sequence.commit("fix all", dict.fromkeys(MODELS, "good"))
        sequence.log.append("final run")
        sequence.run()
    finally:
        stopped = modelci("-C", sequence.repo.root, "serve", "--stop")
        assert stopped.code == 0, stopped.stdout + stopped.stderr
