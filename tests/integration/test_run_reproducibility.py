"""`modelci run`'s reproducibility check takes the pipeline's own training as one of its two
runs: one more run of the same job, started beside it, instead of two more trainings."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from modelci.registry import open_registry
from tests.support.cli import CliResult
from tests.support.hosts import REGISTRY, Hosts
from tests.support.repos import GitRepo
from tests.support.toy import SERVED_SPEC, write_toy

pytestmark = pytest.mark.slow

Run = Callable[..., CliResult]


def test_run_compares_its_own_training_with_one_more_run(
    git_repo: Callable[..., GitRepo], modelci: Run, hosts: Hosts
) -> None:
    repo = git_repo()
    write_toy(repo, SERVED_SPEC.format(bias=0.5))
    version = f"toy-{repo.commit('toy')[:12]}"
    hosts.roots.append(repo.root)
    result = modelci("-C", repo.root, "run", "--json")
    assert result.code == 0, result.stdout + result.stderr
    [toy] = result.json()["models"]
    assert toy["version"] == version and toy["status"] == "done", toy
    assert (toy["steps"]["train"], toy["steps"]["test"], toy["steps"]["deploy"]) == (
        "done",
        "done",
        "done",
    )
    assert "its training against a second run beside it" in result.stderr

    # two jobs in all: the version's own and its second run; no training on the sample
    jobs = sorted(p.name for p in (repo.root / ".modelci/jobs").iterdir())
    assert len(jobs) == 2, jobs
    own, rerun = (repo.root / ".modelci/jobs" / name for name in jobs)
    assert own.name.startswith(f"{version}-2") and rerun.name.startswith(f"{version}-rerun-")
    assert not list((repo.root / ".modelci/tests").glob("*/run-*"))
    # the second run trained the same model from the same inputs
    assert json.loads((rerun / "model/model.json").read_text()) == {"bias": 0.5}
    assert (rerun / "model/model.json").read_bytes() == (own / "model/model.json").read_bytes()

    with open_registry(REGISTRY, repo.root) as registry:
        record = registry.get_version(version)
    assert record is not None
    [check] = [c for c in record.details["tests"]["checks"] if c["kind"] == "reproducibility"]
    assert check["passed"] is True and check["actual"] == "they agree", check
