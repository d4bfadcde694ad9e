"""`modelci run`, `release`, `promote`, `rollback`, `alias` and the audit trail, end to end: real
git repositories, real training jobs, real endpoints on 127.0.0.1.

The module prepares one repository with two tiny stdlib-only models (`alpha` and `beta`, both
depending on `lib/`) once, runs the merge pipeline on it once, and hands each test a copy of it:
`pristine` (committed, never run) or `trained` (both models built, tested and deployed to
staging). Every copy's `.modelci/envs` links to one folder, so the models' environment is built
once. Every test stops the endpoint host of its copies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelci.registry import open_registry
from modelci.registry.base import Event
from tests.support.cli import CliResult
from tests.support.ports import free_port
from tests.support.repos import GitRepo
from tests.support.toy import INFERENCE, SERVED_SPEC, train_script

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]

REGISTRY = "sqlite:///.modelci/registry.db"
MODELS = ("alpha", "beta")
STEP_STATES = {"done", "cached", "failed", "skipped"}

# The deploy's smoke request sends one row (the test channel's first, without its label); the
# reproducibility check predicts on many: this version passes its tests and fails its deploy.
FAILS_ON_ONE_ROW = (
    INFERENCE
    + """
_predict = predict_fn

def predict_fn(data, model):
    if len(data) == 1:
        raise RuntimeError("cannot predict a single row")
    return _predict(data, model)
"""
)
SPEC = '[model]\ndepends_on = ["lib/**"]\n\n' + SERVED_SPEC + '\n[gates]\nscore = "{gate}"\n'


def write_model(
    repo: GitRepo,
    name: str,
    *,
    bias: float = 0.5,
    gate: str = ">= 0.5",
    train_extra: str = "",
    inference: str = INFERENCE,
) -> None:
    repo.write(f"models/{name}/model.toml", SPEC.format(bias=bias, gate=gate))
    repo.write(f"models/{name}/train.py", train_script(train_extra))
    repo.write(f"models/{name}/inference.py", inference)
    repo.write(f"models/{name}/requirements.txt", "")


def plain(text: str) -> str:
    """Text without terminal escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# --- the prepared repository -------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """The module's repositories: committed only, and after one `modelci run`."""

    pristine: Path
    trained: Path
    commit: str
    first_run: dict[str, Any]
    first_run_stderr: str  # the progress `run --json` streams beside its document


def _clean_environ(home: Path, port: int) -> dict[str, str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MODELCI_", "GIT_", "CIRCLE_", "GITHUB_"))
    }
    uv_cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "NO_COLOR": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "UV_CACHE_DIR": uv_cache,
            "MODELCI_SERVE_PORT": str(port),
            "MODELCI_ALLOW_LOCAL": "1",  # local settings, also when the suite runs under CI
        }
    )
    return environ


def _copy(source: Path, target: Path) -> Path:
    """A copy of a repository and its `.modelci`, without the stopped host's state file."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        here = Path(folder)
        return [
            n
            for n in names
            if n in ("serve.json", "host.log", "__pycache__")
            or not ((here / n).is_symlink() or (here / n).is_file() or (here / n).is_dir())
        ]

    shutil.copytree(source, target, symlinks=True, ignore=ignore)
    return target


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    base = tmp_path_factory.mktemp("pipelines")
    environ = _clean_environ(base / "home", free_port())
    (base / "home").mkdir()
    envs = base / "envs"
    envs.mkdir()

    def call(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=root, env=environ, capture_output=True, text=True, check=False
        )

    pristine = base / "pristine"
    repo = GitRepo(pristine)
    pristine.mkdir()
    repo.write(".gitignore", ".modelci/\n")
    for name, bias in zip(MODELS, (0.5, 1.5), strict=True):
        write_model(repo, name, bias=bias)
    rows = "".join(f"{i},{i % 3},{i % 5},{i % 2}\n" for i in range(20))
    repo.write("data/toy/train.csv", "a,b,c,label\n" + rows)
    repo.write("data/toy/test.csv", "a,b,c,label\n" + rows)
    repo.write("lib/common.py", "SCALE = 1\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "models")):
        assert call(pristine, "git", *args).returncode == 0
    commit = call(pristine, "git", "rev-parse", "HEAD").stdout.strip()
    (pristine / ".modelci").mkdir()
    (pristine / ".modelci" / "envs").symlink_to(envs, target_is_directory=True)

    trained = _copy(pristine, base / "trained")
    modelci = (sys.executable, "-m", "modelci", "-C", str(trained))
    try:
        done = call(trained, *modelci, "run", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        first_run = json.loads(done.stdout)  # exactly one document on stdout
    finally:
        stopped = call(trained, *modelci, "serve", "--stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    yield Prepared(pristine, trained, commit, first_run, done.stderr)


class Repo(GitRepo):
    """A test's copy of a prepared repository, with the CLI and the registry at hand."""

    def __init__(self, root: Path, modelci: Run):
        super().__init__(root)
        self.modelci = modelci

    def cli(self, *args: str) -> CliResult:
        return self.modelci("-C", self.root, *args)

    def ok(self, *args: str) -> Any:
        """Run a command with --json that must succeed; its document."""
        result = self.cli(*args, "--json")
        assert result.code == 0, result.stdout + result.stderr
        return result.json()

    def run(self, *args: str) -> tuple[int, dict[str, Any]]:
        """`modelci run --json`: its exit code, and its models by name."""
        result = self.cli("run", "--json", *args)
        assert result.code in (0, 1), result.stdout + result.stderr
        document = result.json()
        return result.code, {m["model"]: m for m in document["models"]}

    def events(self, model: str | None = None, kind: str | None = None) -> list[Event]:
        with open_registry(REGISTRY, self.root) as registry:
            return registry.events(model, kind=kind)

    def pointer(self, model: str, environment: str) -> str | None:
        with open_registry(REGISTRY, self.root) as registry:
            pointer = registry.get_pointer(model, environment)
            return pointer.version if pointer else None

    def snapshot(self) -> tuple[list[int | None], list[tuple[str, str, str, int]]]:
        """Every event id and every pointer: equal snapshots mean nothing changed."""
        with open_registry(REGISTRY, self.root) as registry:
            return (
                [e.id for e in registry.events()],
                sorted(
                    (p.model, p.environment, p.version, p.generation) for p in registry.pointers()
                ),
            )

    def version(self, model: str, rev: str = "HEAD") -> str:
        return f"{model}-{self.sha(rev)[:12]}"


@pytest.fixture
def copies(
    prepared: Prepared, modelci: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Repo]]:
    """Factory: `copies("trained")` or `copies("pristine")`; every host stopped afterwards."""
    monkeypatch.setenv("MODELCI_SERVE_PORT", str(free_port()))
    made: list[Repo] = []

    def make(which: str) -> Repo:
        source = prepared.trained if which == "trained" else prepared.pristine
        repo = Repo(_copy(source, tmp_path / f"{which}{len(made)}"), modelci)
        made.append(repo)
        return repo

    yield make
    for repo in made:
        stopped = repo.cli("serve", "--stop", "--json")
        assert stopped.code == 0, stopped.stdout + stopped.stderr


@pytest.fixture
def trained(copies: Callable[[str], Repo]) -> Repo:
    return copies("trained")


# --- run ---------------------------------------------------------------------------------------


def test_first_run_builds_trains_tests_and_deploys_every_model(prepared: Prepared) -> None:
    document = prepared.first_run
    assert set(document) == {"commit", "models"} and document["commit"] == prepared.commit
    assert [m["model"] for m in document["models"]] == list(MODELS)
    for entry in document["models"]:
        assert set(entry) == {"model", "version", "status", "steps", "error", "metrics"}
        assert entry["metrics"] == {"score": 0.75}
        assert entry["version"] == f"{entry['model']}-{prepared.commit[:12]}"
        assert entry["status"] == "done" and entry["error"] is None
        assert list(entry["steps"]) == ["build", "train", "test", "deploy"]
        assert set(entry["steps"].values()) <= STEP_STATES
        assert entry["steps"]["build"] in ("done", "cached")  # one environment for both
        assert [entry["steps"][s] for s in ("train", "test", "deploy")] == ["done"] * 3
    # CI logs are not silent under --json: progress and each model's training log, prefixed
    for name in MODELS:
        assert any(line.startswith(f"{name} | ") for line in prepared.first_run_stderr.splitlines())


def test_second_run_on_the_same_commit_is_all_cached(trained: Repo) -> None:
    before = trained.snapshot()
    code, models = trained.run()
    assert code == 0 and list(models) == list(MODELS)
    for name, entry in models.items():
        assert entry["status"] == "done" and entry["version"] == trained.version(name)
        assert entry["steps"] == dict.fromkeys(("build", "train", "test", "deploy"), "cached")
    assert trained.snapshot() == before  # no event, no pointer move
    assert trained.pointer("alpha", "staging") == trained.version("alpha")


def test_human_run_shows_a_live_table_and_a_summary(
    trained: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal, so the table is live
    monkeypatch.setenv("TERM", "xterm")
    result = trained.cli("run", "--jobs", "2")
    assert result.code == 0, result.stdout + result.stderr
    live = plain(result.stderr)  # the table, redrawn as the steps move
    assert "alpha" in live and "beta" in live and "pending" in live and "cached" in live
    lines = plain(result.stdout).splitlines()
    assert lines[0].split() == ["model", "version", "build", "train", "test", "deploy", "metrics"]
    assert lines[1].split() == ["alpha", trained.version("alpha"), *["cached"] * 4, "score=0.75"]
    assert f"{trained.sha()[:12]}: 2 of 2 model(s) ok" in result.stdout


def test_only_the_models_a_commit_touches_run(trained: Repo) -> None:
    write_model(trained, "alpha", bias=2.5)
    trained.commit("alpha: bias 2.5")
    code, models = trained.run()
    assert code == 0 and list(models) == ["alpha"]
    assert models["alpha"]["version"] == trained.version("alpha")
    assert models["alpha"]["steps"] == {
        "build": "cached",
        "train": "done",
        "test": "done",
        "deploy": "done",
    }
    assert trained.pointer("alpha", "staging") == trained.version("alpha")
    assert trained.pointer("beta", "staging") == trained.version("beta", "HEAD^")

    trained.write("README.md", "nothing to do with models\n")
    trained.commit("docs")
    code, models = trained.run()
    assert code == 0 and models == {}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_one_models_failure_never_stops_another(trained: Repo, jobs: str) -> None:
    """A shared file changes both models; beta's training fails, alpha goes all the way."""
    trained.write("lib/common.py", "SCALE = 2\n")
    write_model(trained, "beta", bias=1.5, train_extra='raise SystemExit("beta cannot train")')
    trained.commit("lib change, broken beta")
    code, models = trained.run("--jobs", jobs)
    assert code == 1 and list(models) == list(MODELS)
    alpha, beta = models["alpha"], models["beta"]
    assert alpha["status"] == "done" and alpha["error"] is None
    assert alpha["steps"] == {"build": "cached", "train": "done", "test": "done", "deploy": "done"}
    assert beta["status"] == "failed" and beta["error"]
    assert beta["version"] == trained.version("beta")
    assert beta["steps"] == {
        "build": "cached",
        "train": "failed",
        "test": "skipped",
        "deploy": "skipped",
    }
    assert trained.pointer("alpha", "staging") == trained.version("alpha")
    assert trained.pointer("beta", "staging") == trained.version("beta", "HEAD^")

    human = trained.cli("run", "--jobs", jobs)
    assert human.code == 1 and "1 of 2 model(s) ok" in human.stdout
    assert "error: beta:" in human.stderr


def test_gate_failure_fails_the_test_step_and_skips_the_deploy(trained: Repo) -> None:
    write_model(trained, "alpha", bias=0.5, gate=">= 0.9")
    trained.commit("alpha: a gate it cannot pass")
    code, models = trained.run()
    assert code == 1 and list(models) == ["alpha"]
    entry = models["alpha"]
    assert entry["status"] == "failed" and "score: expected >= 0.9, got 0.75" in entry["error"]
    assert entry["metrics"] == {"score": 0.75}
    assert entry["steps"] == {
        "build": "cached",
        "train": "cached",  # only the gate changed: the artifact is tested again
        "test": "failed",
        "deploy": "skipped",
    }
    assert trained.pointer("alpha", "staging") == trained.version("alpha", "HEAD^")
    assert "gate_failed" in [e.kind for e in trained.events("alpha")[:2]]

    # what status and history show of it: the test results, the metrics, the failed check
    status = {m["model"]: m for m in trained.ok("status")["models"]}["alpha"]
    assert status["latest"]["tests"] == "failed" and status["latest"]["metrics"] == {"score": 0.75}
    staging = status["environments"]["staging"]
    assert staging["tests"] == "passed" and staging["metrics"] == {"score": 0.75}
    assert status["environments"]["production"] is None
    human = plain(trained.cli("status").stdout)
    assert "tests failed" in human and "tests passed" in human and "score=0.75" in human
    test = next(e for e in trained.ok("history", "alpha")["events"] if e["kind"] == "test")
    assert test["details"]["passed"] is False
    [failure] = test["details"]["failures"]
    assert failure["name"] == "score" and failure["expected"] == ">= 0.9"
    assert failure["actual"] == 0.75
    assert "failed: score: expected >= 0.9, got 0.75" in plain(
        trained.cli("history", "alpha").stdout
    )


def test_a_reproducibility_failure_says_what_differs(trained: Repo) -> None:
    write_model(trained, "beta", bias=1.5, train_extra="import random; bias += random.random()")
    trained.commit("beta: an unseeded random bias")
    code, models = trained.run()
    assert code == 1 and list(models) == ["beta"]
    error = models["beta"]["error"]
    assert error.startswith("checks failed: reproducibility: expected two trainings agree")
    assert "files that differ: model.json" in error and "predictions differ" in error
    assert "likely causes: an unseeded random generator" in error
    test = next(e for e in trained.ok("history", "beta")["events"] if e["kind"] == "test")
    assert "model.json" in test["details"]["failures"][0]["message"]


def test_read_only_commands_and_the_host_survive_a_broken_model_toml(
    trained: Repo, tmp_path: Path
) -> None:
    """beta's model.toml breaks in the work tree: status and history warn and show the
    registry's state, and the endpoint host still serves both versions (beta's spec is read
    from the commit its version was built from)."""
    from modelci.deploy.local import LocalDeployer
    from modelci.workspace import Workspace

    trained.write("models/beta/model.toml", "[train]\nentrypoint = 3\n")
    status = trained.cli("status", "--json")
    assert status.code == 0, status.stdout + status.stderr
    assert "models/beta/model.toml" in status.stderr
    models = {m["model"]: m for m in status.json()["models"]}
    assert models["beta"]["environments"]["staging"]["version"] == trained.version("beta")
    history = trained.cli("history", "beta", "--json")
    assert history.code == 0 and "models/beta/model.toml" in history.stderr
    assert "deploy" in [e["kind"] for e in history.json()["events"]]

    deployer = LocalDeployer(Workspace(trained.root))
    for name in MODELS:  # starts the host, which follows the registry
        deployer.apply(f"{name}-staging", trained.version(name), timeout=60)
    body = tmp_path / "row.json"
    body.write_text("[[1, 2]]")
    for name, bias in zip(MODELS, (0.5, 1.5), strict=True):
        answer = trained.cli("invoke", f"{name}-staging", "--data", str(body))
        assert answer.code == 0, answer.stdout + answer.stderr
        assert json.loads(answer.stdout) == {"predictions": [3 + bias]}
    assert set(trained.ok("serve", "--status")["endpoints"]) == {"alpha-staging", "beta-staging"}


# --- retiring ----------------------------------------------------------------------------------


def served_endpoints(repo: Repo) -> set[str]:
    return set(repo.ok("serve", "--status")["endpoints"])


def test_a_model_deleted_on_main_is_retired_by_the_next_run(trained: Repo) -> None:
    trained.git("tag", "v1")
    trained.ok("release", "v1")  # production too; the local host now serves four endpoints
    assert served_endpoints(trained) == {
        "alpha-staging",
        "alpha",
        "beta-staging",
        "beta",
    }
    version = trained.version("beta")
    trained.git("rm", "-r", "-q", "models/beta")
    head = trained.commit("beta is no more")

    code, models = trained.run()
    assert code == 0 and list(models) == ["beta"]
    entry = models["beta"]
    assert entry["status"] == "done" and entry["version"] == version
    assert entry["steps"] == {
        "build": "skipped",
        "train": "skipped",
        "test": "skipped",
        "deploy": "retired",
    }
    assert (
        trained.pointer("beta", "staging") is None and trained.pointer("beta", "production") is None
    )
    retired = trained.events("beta", "retire")
    assert {e.environment for e in retired} == {"staging", "production"}
    assert all(e.from_version == version and e.commit == head for e in retired)
    assert served_endpoints(trained) == {"alpha-staging", "alpha"}

    status = {m["model"]: m for m in trained.ok("status")["models"]}
    assert status["beta"]["retired"] is True and status["alpha"]["retired"] is False
    assert set(status["beta"]["environments"].values()) == {None}
    assert "retired" in trained.cli("status").stdout
    assert "retire" in [e["kind"] for e in trained.ok("history", "beta")["events"]]

    code, models = trained.run()  # nothing left to retire
    assert code == 0 and models == {}


def test_undeploy_by_hand_clears_the_pointer_and_stops_the_endpoint(trained: Repo) -> None:
    from modelci.deploy.local import LocalDeployer
    from modelci.workspace import Workspace

    deployer = LocalDeployer(Workspace(trained.root))
    for name in MODELS:  # starts the host
        deployer.apply(f"{name}-staging", trained.version(name), timeout=60)
    assert served_endpoints(trained) == {"alpha-staging", "beta-staging"}

    done = trained.ok("undeploy", "alpha", "--env", "staging")
    assert done == {
        "model": "alpha",
        "environment": "staging",
        "endpoint": "alpha-staging",
        "previous_version": trained.version("alpha"),
        "status": "undeployed",
    }
    assert trained.pointer("alpha", "staging") is None
    [event] = trained.events("alpha", "undeploy")
    assert event.environment == "staging" and event.from_version == trained.version("alpha")
    assert served_endpoints(trained) == {"beta-staging"}
    assert trained.pointer("beta", "staging") == trained.version("beta")

    again = trained.ok("undeploy", "alpha", "--env", "staging")
    assert again["status"] == "absent" and again["previous_version"] is None
    assert "nothing was deployed" in trained.cli("undeploy", "alpha", "--env", "staging").stdout
    unknown = trained.cli("undeploy", "gamma", "--env", "staging", "--json")
    assert unknown.code == 2 and "gamma" in unknown.json()["error"]["message"]
    wrong = trained.cli("undeploy", "beta", "--env", "qa", "--json")
    assert wrong.code == 2 and "unknown environment 'qa'" in wrong.json()["error"]["message"]
    assert trained.pointer("beta", "staging") == trained.version("beta")


# --- release -----------------------------------------------------------------------------------


def _released(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert {"tag", "commit", "models"} <= set(document)
    for entry in document["models"]:
        assert {"model", "version", "previous_version", "status"} <= set(entry)
    return {m["model"]: m for m in document["models"]}


def test_release_of_an_annotated_tag_then_the_same_again(trained: Repo) -> None:
    trained.git("tag", "-a", "v1.0.0", "-m", "first release")
    document = trained.ok("release", "v1.0.0")
    assert document["tag"] == "v1.0.0" and document["commit"] == trained.sha()
    released = _released(document)
    assert list(released) == list(MODELS)
    for name, entry in released.items():
        assert entry["version"] == trained.version(name)
        assert entry["previous_version"] is None and entry["status"] == "deployed"
        assert trained.pointer(name, "production") == trained.version(name)
        shown = trained.ok("alias", name, "latest")
        assert shown == {"model": name, "aliases": {"latest": trained.version(name)}}
        [release] = trained.events(name, "release")
        assert release.tag == "v1.0.0" and release.environment == "production"
        assert release.to_version == trained.version(name)
        alias = trained.events(name, "alias")[0]
        assert alias.tag == "v1.0.0" and alias.to_version == trained.version(name)

    before = trained.snapshot()
    again = _released(trained.ok("release", "v1.0.0"))
    assert {e["status"] for e in again.values()} == {"unchanged"}
    assert all(e["previous_version"] == e["version"] for e in again.values())
    assert trained.snapshot() == before

    human = trained.cli("release", "v1.0.0")
    assert human.code == 0 and "alpha: unchanged" in human.stdout
    shown = plain(trained.cli("history", "alpha").stdout)
    assert "tag" in shown.splitlines()[0] and "v1.0.0" in shown
    assert "passed" in shown  # the first run's test event


def test_lightweight_tag_after_the_last_build_takes_the_ancestors_version(trained: Repo) -> None:
    built = trained.sha()
    trained.write("README.md", "docs only\n")
    trained.commit("docs")
    trained.git("tag", "v1.1.0")  # lightweight, on a commit nothing was built from
    released = _released(trained.ok("release", "v1.1.0"))
    for name in MODELS:
        assert released[name]["version"] == f"{name}-{built[:12]}"
        assert released[name]["status"] == "deployed"
        assert trained.pointer(name, "production") == f"{name}-{built[:12]}"


def test_release_takes_the_version_in_force_at_the_tag_not_a_newer_one(trained: Repo) -> None:
    trained.git("tag", "v1")
    write_model(trained, "alpha", bias=3.5)
    trained.commit("alpha: newer")
    code, models = trained.run()
    assert code == 0 and list(models) == ["alpha"]
    released = _released(trained.ok("release", "v1"))
    assert released["alpha"]["version"] == trained.version("alpha", "v1")


def test_a_model_without_a_version_at_the_tag_is_missing_and_the_others_released(
    trained: Repo,
) -> None:
    write_model(trained, "gamma")
    trained.commit("gamma, never built")
    trained.git("tag", "-a", "v2", "-m", "v2")
    result = trained.cli("release", "v2", "--json")
    assert result.code == 1, result.stdout + result.stderr
    released = _released(result.json())
    assert list(released) == ["alpha", "beta", "gamma"]
    assert released["gamma"]["status"] == "missing" and released["gamma"]["version"] is None
    assert "no version of gamma" in released["gamma"]["reason"]
    assert "modelci train gamma --rev v2 && modelci test gamma" in released["gamma"]["reason"]
    for name in MODELS:
        assert released[name]["status"] == "deployed"
        assert trained.pointer(name, "production") == trained.version(name, "HEAD^")
    assert trained.pointer("gamma", "production") is None

    human = trained.cli("release", "v2")
    assert human.code == 1 and "gamma: missing" in human.stdout
    assert "no version of gamma" in human.stdout


def test_models_added_after_the_tag_are_not_part_of_its_release(trained: Repo) -> None:
    trained.git("tag", "v1")
    write_model(trained, "gamma")
    trained.commit("gamma, after the tag")
    released = _released(trained.ok("release", "v1"))
    assert list(released) == list(MODELS)


def test_release_refuses_tags_off_main_and_unknown_tags(trained: Repo) -> None:
    trained.git("checkout", "-q", "-b", "experiment")
    trained.commit("an experiment")
    trained.git("tag", "-a", "v9", "-m", "off main")
    trained.git("tag", "v9-light")
    trained.git("checkout", "-q", "main")
    before = trained.snapshot()
    for tag in ("v9", "v9-light"):
        result = trained.cli("release", tag, "--json")
        assert result.code == 2, result.stdout + result.stderr
        error = result.json()["error"]
        assert "which is not on main" in error["message"] and tag in error["message"]
    for tag in ("v404", "v9~1", "v9^"):  # revision syntax does not make a tag
        unknown = trained.cli("release", tag, "--json")
        assert unknown.code == 2 and f"no tag {tag!r}" in unknown.json()["error"]["message"]
    human = trained.cli("release", "v9")
    assert human.code == 2 and "error:" in human.stderr and "not on main" in human.stderr
    assert trained.snapshot() == before

    # a branch name is not a tag
    assert trained.cli("release", "experiment", "--json").code == 2
    # [project].main names the branch releases come from
    trained.write("modelci.toml", '[project]\nmain = "experiment"\n')
    trained.git("checkout", "-q", "experiment")
    trained.commit("main is experiment")
    trained.git("tag", "v10")
    assert trained.cli("release", "v10", "--json").code == 0
    assert trained.pointer("alpha", "production") == trained.version("alpha", "main")
    trained.write("modelci.toml", '[project]\nmain = "trunk"\n')
    missing = trained.cli("release", "v10", "--json")
    assert missing.code == 2 and "'trunk'" in missing.json()["error"]["message"]


# --- promote, rollback, alias ------------------------------------------------------------------


def test_promote_and_rollback_skip_failed_deploys_and_latest_follows_production(
    trained: Repo,
) -> None:
    first = trained.version("alpha")
    trained.git("tag", "v1")
    assert _released(trained.ok("release", "v1"))["alpha"]["version"] == first

    write_model(trained, "alpha", bias=2.5)
    trained.commit("alpha 2")
    second = trained.version("alpha")
    assert trained.run()[1]["alpha"]["status"] == "done"
    write_model(trained, "alpha", bias=3.5, inference=FAILS_ON_ONE_ROW)
    trained.commit("alpha 3, fails its smoke request")
    broken = trained.version("alpha")
    code, models = trained.run()
    assert code == 1 and models["alpha"]["steps"]["deploy"] == "failed", models
    assert models["alpha"]["steps"]["test"] == "done" and models["alpha"]["error"]
    assert trained.pointer("alpha", "staging") == second  # put back
    assert trained.events("alpha", "deploy_failed")[0].to_version == broken

    # staging's history: first, second, broken (failed): back from second skips broken
    outcome = trained.ok("rollback", "alpha", "--env", "staging")
    assert outcome["version"] == first and outcome["previous_version"] == second
    assert outcome["status"] == "deployed" and outcome["environment"] == "staging"
    assert trained.pointer("alpha", "staging") == first
    assert trained.events("alpha")[0].kind == "rollback"
    assert trained.ok("rollback", "alpha", "--env", "staging")["version"] == second

    # promote what staging serves; `latest` follows production
    promoted = trained.ok("promote", "alpha", "--from", "staging", "--to", "production")
    assert promoted["version"] == second and promoted["previous_version"] == first
    assert trained.ok("alias", "alpha", "latest")["aliases"] == {"latest": second}
    assert trained.events("alpha", "promote")[0].environment == "production"

    rolled = trained.ok("rollback", "alpha", "--env", "production")
    assert rolled["version"] == first and rolled["previous_version"] == second
    assert trained.pointer("alpha", "production") == first
    assert trained.ok("alias", "alpha", "latest")["aliases"] == {"latest": first}

    # --to names the version; --version promotes one the source has served
    named = trained.ok("rollback", "alpha", "--env", "production", "--to", second)
    assert named["version"] == second
    assert trained.ok("alias", "alpha", "latest")["aliases"] == {"latest": second}
    promoted = trained.ok(
        "promote", "alpha", "--from", "staging", "--to", "production", "--version", first, "--force"
    )  # older than what is in force
    assert promoted["version"] == first
    assert trained.events("alpha", "promote")[0].details["forced"] is True

    # the broken version was never served: promoting it from staging is refused
    before = trained.snapshot()
    refused = trained.cli(
        "promote", "alpha", "--from", "staging", "--to", "production", "--version", broken, "--json"
    )
    assert (
        refused.code == 2 and "never been deployed to staging" in refused.json()["error"]["message"]
    )
    assert trained.snapshot() == before


def test_an_environment_that_requires_approval_takes_a_version_approved_by_someone_else(
    trained: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained.write(
        "modelci.toml",
        '[environments.staging]\nsuffix = "-staging"\n\n'
        "[environments.production]\napproval = true\n",
    )
    version = trained.version("alpha")
    # the author (the run recorded the git identity of the test environment) and no CI run
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")
    for name in ("GITHUB_ACTOR", "CIRCLE_USERNAME", "GITLAB_USER_LOGIN", "CIRCLE_BUILD_URL"):
        monkeypatch.delenv(name, raising=False)
    promote = ("promote", "alpha", "--from", "staging", "--to", "production", "--json")

    # unapproved: refused, --force or not, and nothing moves
    for extra in ((), ("--force",)):
        refused = trained.cli(*promote, *extra)
        message = refused.json()["error"]["message"]
        assert refused.code == 1 and "production requires approval" in message, message
        assert f"modelci approve {version} --env production" in message
        assert "--force to deploy anyway" not in message
        assert trained.pointer("alpha", "production") is None
    assert (
        trained.events("alpha", "deploy_refused")[0]
        .details["reasons"][0]
        .startswith("production requires approval")
    )

    # the author may not approve their own version
    own = trained.cli("approve", version, "--env", "production", "--json")
    assert own.code == 2 and "must come from someone else" in own.json()["error"]["message"]
    assert trained.events("alpha", "approved") == []
    assert trained.cli("approve", "alpha-000000000000", "--env", "production").code == 2
    assert trained.cli("approve", version, "--env", "qa").code == 2

    # someone else, in a CI run: recorded with who and where
    monkeypatch.setenv("GITHUB_ACTOR", "reviewer")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    approved = trained.ok("approve", version, "--env", "production", "--note", "looks right")
    assert approved == {
        "version": version,
        "environment": "production",
        "actor": "reviewer",
        "ci_url": "https://github.example/team/models/actions/runs/77",
        "approvers": ["reviewer"],
        "required": True,
    }
    event = trained.events("alpha", "approved")[0]
    assert (event.actor, event.environment, event.details) == (
        "reviewer",
        "production",
        {"note": "looks right"},
    )
    # an approval for one environment is not one for another version or environment
    assert trained.ok(*promote[:-1])["version"] == version
    assert trained.pointer("alpha", "production") == version
    trained.git("tag", "v1")
    released = _released(trained.cli("release", "v1", "--json").json())
    assert released["alpha"]["status"] in ("deployed", "unchanged")
    assert released["beta"]["status"] != "deployed"
    assert trained.pointer("beta", "production") is None


def test_bad_moves_exit_2_with_the_reason_and_change_nothing(trained: Repo) -> None:
    version = trained.version("alpha")
    before = trained.snapshot()
    cases: list[tuple[tuple[str, ...], str]] = [
        (("rollback", "alpha", "--env", "nope"), "unknown environment 'nope'"),
        (
            ("rollback", "alpha", "--env", "staging"),
            f"staging has served no version of 'alpha' before {version}",
        ),
        (("rollback", "alpha", "--env", "production"), "production serves no version"),
        (
            ("rollback", "alpha", "--env", "staging", "--to", "alpha-000000000000"),
            "no version 'alpha-000000000000'",
        ),
        (("rollback", "nobody", "--env", "staging"), "nobody"),
        (
            ("promote", "alpha", "--from", "nope", "--to", "production"),
            "unknown environment 'nope'",
        ),
        (("promote", "alpha", "--from", "staging", "--to", "qa"), "unknown environment 'qa'"),
        (
            ("promote", "alpha", "--from", "production", "--to", "staging"),
            "production serves no version",
        ),
        (("alias", "alpha", "canary", "alpha-000000000000"), "no version 'alpha-000000000000'"),
        (("alias", "alpha", "canary", trained.version("beta")), "of model 'alpha'"),
        (("alias", "alpha", "production", version), "is an environment"),
        (("alias", "alpha", "Bad Name", version), "must match"),
        (("alias", "alpha", "latest"), "has no alias 'latest'"),
    ]
    for args, reason in cases:
        result = trained.cli(*args, "--json")
        assert result.code == 2, (args, result.stdout + result.stderr)
        assert reason in result.json()["error"]["message"], (args, result.stdout)
        human = trained.cli(*args)
        assert human.code == 2 and reason in " ".join(human.stderr.split()), (args, human.stderr)
    assert trained.snapshot() == before


def test_aliases_are_set_and_shown(trained: Repo) -> None:
    alpha = trained.version("alpha")
    assert trained.ok("alias", "alpha") == {"model": "alpha", "aliases": {}}
    assert trained.ok("alias", "alpha", "canary", alpha)["aliases"] == {"canary": alpha}
    [event] = trained.events("alpha", "alias")
    assert event.environment == "@canary" and event.to_version == alpha
    assert event.actor == "Test Author <author@example.com>"
    before = trained.snapshot()
    trained.ok("alias", "alpha", "canary", alpha)  # already so: no event
    assert trained.snapshot() == before
    human = trained.cli("alias", "alpha")
    assert human.code == 0 and f"alpha@canary -> {alpha}" in human.stdout
    assert trained.ok("alias", "beta") == {"model": "beta", "aliases": {}}


# --- audit -------------------------------------------------------------------------------------

CI = {
    "github": (
        {
            "GITHUB_ACTOR": "octocat",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/models",
            "GITHUB_RUN_ID": "4242",
        },
        "octocat",
        "https://github.com/acme/models/actions/runs/4242",
    ),
    "circleci": (
        {
            "CIRCLE_USERNAME": "circle-user",
            "CIRCLE_BUILD_URL": "https://app.circleci.com/pipelines/gh/acme/models/7",
        },
        "circle-user",
        "https://app.circleci.com/pipelines/gh/acme/models/7",
    ),
}


@pytest.mark.parametrize("ci", sorted(CI))
def test_every_event_carries_the_ci_actor_and_run(
    copies: Callable[[str], Repo], ci: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables, actor, url = CI[ci]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    repo = copies("pristine")
    code, models = repo.run()
    assert code == 0 and {m["status"] for m in models.values()} == {"done"}
    repo.git("tag", "v1")
    repo.ok("release", "v1")
    for name in MODELS:
        events = repo.events(name)
        assert {e.kind for e in events} >= {"train", "test", "deploy", "release", "alias"}
        assert [(e.kind, e.actor, e.ci_url) for e in events] == [
            (e.kind, actor, url) for e in events
        ]
        history = repo.ok("history", name)["events"]
        assert len(history) == len(events)
        assert all(e["actor"] == actor and e["ci_url"] == url for e in history)
        assert [e["tag"] for e in history if e["kind"] == "release"] == ["v1"]
    human = repo.cli("history", "alpha")
    assert human.code == 0 and actor in human.stdout and url in human.stdout


# --- one model's failure never stops another --------------------------------------------------


def test_a_missing_entry_point_fails_that_model_only(trained: Repo) -> None:
    trained.write("lib/common.py", "SCALE = 3\n")  # both models change
    (trained.root / "models/beta/train.py").unlink()
    trained.commit("lib change; beta loses its train.py")
    code, models = trained.run()
    assert code == 1 and list(models) == ["alpha", "beta"]
    assert models["alpha"]["status"] == "done", models["alpha"]
    assert models["alpha"]["steps"]["deploy"] == "done"
    beta = models["beta"]
    assert beta["status"] == "failed" and "train.py" in beta["error"]
    assert beta["steps"]["build"] == "failed" and beta["steps"]["deploy"] == "skipped"
    assert trained.pointer("alpha", "staging") == trained.version("alpha")
    assert trained.pointer("beta", "staging") == trained.version("beta", "HEAD^")


def test_a_broken_spec_fails_that_model_only_in_changed_run_and_release(trained: Repo) -> None:
    trained.write("lib/common.py", "SCALE = 4\n")
    trained.write("models/beta/model.toml", "[train\nentrypoint = 'train.py'\n")
    trained.commit("lib change; beta's spec broken")
    changed = {c["model"]: c for c in trained.ok("changed")["changed"]}
    assert "error" not in changed["alpha"]
    assert "models/beta/model.toml" in changed["beta"]["error"]

    code, models = trained.run()
    assert code == 1 and list(models) == ["alpha", "beta"]
    assert models["alpha"]["status"] == "done", models["alpha"]
    assert models["beta"]["status"] == "failed"
    assert "models/beta/model.toml" in models["beta"]["error"]
    assert models["beta"]["steps"] == {
        "build": "failed",
        "train": "skipped",
        "test": "skipped",
        "deploy": "skipped",
    }

    trained.git("tag", "v1")
    result = trained.cli("release", "v1", "--json")
    assert result.code == 1, result.stdout + result.stderr
    released = {m["model"]: m for m in result.json()["models"]}
    assert released["alpha"]["status"] == "deployed"
    assert released["alpha"]["version"] == trained.version("alpha")
    assert released["beta"]["status"] == "failed"
    assert "models/beta/model.toml" in released["beta"]["reason"]
    assert trained.pointer("beta", "production") is None


# --- every model on main eventually gets a ready version ---------------------------------------


def test_on_an_empty_registry_the_first_run_builds_every_model(
    copies: Callable[[str], Repo],
) -> None:
    pristine = copies("pristine")
    write_model(pristine, "alpha", bias=2.5)
    pristine.commit("alpha only")  # beta was never built: it is, whatever this commit touched
    code, models = pristine.run("--base", "HEAD^")  # an explicit base: as it says
    assert code == 0 and list(models) == ["alpha"]
    code, models = pristine.run()
    assert code == 0 and list(models) == ["alpha", "beta"]
    assert models["alpha"]["steps"]["train"] == "cached"
    assert models["beta"]["steps"]["deploy"] == "done"
    assert pristine.pointer("beta", "staging") == pristine.version("beta")


def test_a_change_whose_run_never_happened_is_built_by_the_next_run(trained: Repo) -> None:
    write_model(trained, "beta", bias=2.5)
    trained.commit("beta 2.5 (its pipeline was killed)")
    trained.write("models/alpha/notes.md", "alpha only\n")
    trained.commit("alpha notes")
    code, models = trained.run()
    assert code == 0 and list(models) == ["alpha", "beta"]
    assert models["beta"]["steps"]["train"] == "done"
    assert trained.pointer("beta", "staging") == trained.version("beta")
    trained.write("README.md", "docs\n")
    trained.commit("docs")
    assert trained.run() == (0, {})  # each model compared from its own deploy


def test_release_after_a_reverted_broken_commit_never_picks_the_failed_version(
    trained: Repo,
) -> None:
    good = trained.version("alpha")
    write_model(trained, "alpha", bias=0.5, gate=">= 0.9")
    trained.commit("alpha: a gate it cannot pass")
    trained.git("tag", "broken")
    assert trained.run()[1]["alpha"]["steps"]["test"] == "failed"
    trained.git("revert", "--no-edit", "HEAD")
    trained.git("tag", "reverted")  # released before any run on it

    released = _released(trained.ok("release", "reverted"))
    assert released["alpha"]["version"] == good and released["alpha"]["status"] == "deployed"
    assert released["beta"]["version"] == trained.version("beta", "HEAD~2")

    result = trained.cli("release", "broken", "--json")
    assert result.code == 1, result.stdout + result.stderr
    alpha = _released(result.json())["alpha"]
    assert alpha["status"] == "missing" and alpha["version"] is None
    assert "`modelci run` on that commit" in alpha["reason"]
    assert "modelci train alpha --rev broken && modelci test alpha" in alpha["reason"]
    assert "--force" not in alpha["reason"]
    assert trained.pointer("alpha", "production") == good


# --- nothing uncommitted changes what is recorded for a committed version ----------------------


def test_uncommitted_gates_never_change_a_committed_versions_record(trained: Repo) -> None:
    committed = trained.version("alpha")
    write_model(trained, "alpha", bias=0.5, gate=">= 0.9")  # not committed
    report = trained.ok("test", "alpha")  # the commit's gate, not the work tree's
    assert report["version"] == committed and report["passed"] is True
    assert trained.events("alpha", "gate_failed") == []
    promoted = trained.ok("promote", "alpha", "--from", "staging", "--to", "production")
    assert promoted["version"] == committed

    # a --dirty version is tested as the work tree has it, and recorded with itself only
    assert trained.cli("train", "alpha", "--dirty", "--json").code == 0
    dirty = trained.cli("test", "alpha", "--json")
    assert dirty.code == 1 and dirty.json()["version"] == f"{committed}-dirty"
    [failed] = trained.events("alpha", "gate_failed")
    assert failed.version == f"{committed}-dirty"
    with open_registry(REGISTRY, trained.root) as registry:
        record = registry.get_version(committed)
        assert record is not None and record.details["tests"]["passed"] is True


# --- re-test, don't retrain --------------------------------------------------------------------


def test_a_commit_changing_only_gates_or_golden_files_re_tests_the_artifact(
    trained: Repo,
) -> None:
    first = trained.version("alpha")
    write_model(trained, "alpha", bias=0.5, gate=">= 0.9")
    trained.commit("alpha: a stricter gate")
    code, models = trained.run()
    assert code == 1 and models["alpha"]["steps"]["train"] == "cached", models
    assert models["alpha"]["steps"]["test"] == "failed"
    strict = trained.version("alpha")

    write_model(trained, "alpha", bias=0.5, gate=">= 0.6")
    trained.write("models/alpha/tests/golden.jsonl", "")
    trained.commit("alpha: a gate it passes, and a golden file")
    code, models = trained.run()
    assert code == 0 and models["alpha"]["steps"] == {
        "build": "cached",
        "train": "cached",
        "test": "done",
        "deploy": "done",
    }
    with open_registry(REGISTRY, trained.root) as registry:
        versions = [registry.get_version(v) for v in (first, strict, trained.version("alpha"))]
    assert all(v is not None for v in versions)
    assert len({v.artifact_sha256 for v in versions if v}) == 1  # one training
    assert versions[2] and versions[2].details["reused_from"] in (first, strict)
    assert trained.pointer("alpha", "staging") == trained.version("alpha")

    write_model(trained, "alpha", bias=0.7, gate=">= 0.6")  # what training reads: trained
    trained.commit("alpha: bias 0.7")
    assert trained.run()[1]["alpha"]["steps"]["train"] == "done"


def test_release_judges_by_the_gates_the_tag_has(trained: Repo) -> None:
    """The artifact of a stricter gate's commit is the one that passed the lax gate; at a tag
    after the stricter gate, it is not released."""
    write_model(trained, "alpha", bias=0.5, gate=">= 0.9")
    trained.commit("alpha: a stricter gate")
    assert trained.run()[1]["alpha"]["steps"]["test"] == "failed"
    trained.write("README.md", "docs\n")
    trained.commit("docs")
    trained.git("tag", "strict")
    result = trained.cli("release", "strict", "--json")
    assert result.code == 1, result.stdout + result.stderr
    released = _released(result.json())
    assert released["alpha"]["status"] == "missing" and released["alpha"]["version"] is None
    assert released["beta"]["status"] == "deployed"
