"""`modelci test`: every check of a model version, recorded with the version."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError
from modelci.registry.base import Event, Registry, VersionRecord
from modelci.spec import ModelSpec
from modelci.testing.gates import check_gates
from modelci.testing.golden import decode_answer, difference, read_golden, request
from modelci.testing.probe import probe
from modelci.testing.report import CheckResult, TestReport
from modelci.workspace import Workspace

Note = Callable[[str], None]
DEFAULT_GOLDEN = "tests/golden.jsonl"
CHECKS = ("reproducibility", "golden", "gates")


def golden_path(spec: ModelSpec, root: Path) -> tuple[Path, str] | None:
    """The model's golden file: `[tests].golden`, else tests/golden.jsonl when present."""
    relative = spec.file.tests.golden or DEFAULT_GOLDEN
    path = root / spec.folder / relative
    if spec.file.tests.golden is None and not path.exists():
        return None
    return path, f"{spec.folder}/{relative}"


def choose_version(registry: Registry, model: str, version: str | None) -> VersionRecord:
    """The named version, else the model's newest ready one."""
    if version is not None:
        record = registry.get_version(version)
        if record is None or record.model != model:
            raise ConfigError(f"no version {version!r} of model {model!r}")
        if record.status != "ready":
            raise ConfigError(f"version {version} is {record.status}, not ready: train it first")
        return record
    for record in registry.list_versions(model):
        if record.status == "ready":
            return record
    raise ConfigError(f"model {model!r} has no trained version yet: run `modelci train {model}`")


def model_dir(workspace: Workspace, record: VersionRecord) -> Path:
    """The version's model folder, unpacked from the store."""
    from modelci.train.artifacts import materialize

    if not record.artifact_sha256:
        raise ConfigError(f"version {record.version} has no artifact")
    return materialize(workspace.store(), record.artifact_sha256,
                       workspace.state_dir / "models")


def _handler(spec: ModelSpec, root: Path) -> str | None:
    return str(root / spec.folder / spec.file.serve.handler) if spec.file.serve.handler \
        else None


def run_golden(workspace: Workspace, spec: ModelSpec, python: str,
               folder: Path) -> list[CheckResult]:
    """Each golden row through the real serving handler, in process, in the model's env."""
    found = golden_path(spec, workspace.root)
    if found is None:
        return [CheckResult("golden", "golden", True, skipped=True,
                            message="skipped: no golden file (see `modelci golden record`)")]
    path, shown = found
    rows = read_golden(path, shown)
    started = time.monotonic()
    [answers] = probe(python, str(workspace.state_dir),
                      [{"model_dir": str(folder), "handler": _handler(spec, workspace.root)}],
                      [request(row) for row in rows])
    took = (time.monotonic() - started) / max(len(rows), 1)
    tolerance = spec.file.tests.tolerance
    results = []
    for row, answer in zip(rows, answers, strict=True):
        name = f"golden:{shown}:{row.line}"
        if answer["status"] != 200:
            results.append(CheckResult(name, "golden", False, row.output, None,
                                       f"the handler answered {answer['status']}: "
                                       f"{answer['error']}", duration_s=took))
            continue
        actual = decode_answer(answer)
        found_difference = difference(row.output, actual, tolerance)
        results.append(CheckResult(name, "golden", found_difference is None, row.output, actual,
                                   found_difference or "", duration_s=took))
    return results


def run_reproducibility(workspace: Workspace, spec: ModelSpec, record: VersionRecord,
                        python: Path, note: Note) -> CheckResult:
    """Train twice on the sample in fresh job folders and compare."""
    from modelci.testing.repro import compare_runs, test_rows
    from modelci.train.base import TrainingJob
    from modelci.train.jobdir import JobDir
    from modelci.train.local import child_environment
    from modelci.train.runner import run_job

    started = time.monotonic()
    base = workspace.state_dir / "tests" / f"{record.version}-{time.strftime('%H%M%S')}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    sample = spec.train.sample is not None
    runs: list[dict[str, Any]] = []
    for index in (1, 2):
        note(f"{record.version}: reproducibility run {index} of 2"
             + (" on the sample" if sample else " (no [train].sample: on the full data)"))
        result = run_job(workspace, spec, record.commit, python, base / f"run-{index}",
                         sample=sample, on_line=None)
        if not result.succeeded:
            return CheckResult("reproducibility", "reproducibility", False,
                               message=f"run {index} failed: {result.reason}",
                               duration_s=time.monotonic() - started)
        job = JobDir(base / f"run-{index}")

        env = child_environment(TrainingJob(
            name="", job=job, python=python, entrypoint=spec.train.entrypoint,
            hyperparameters=dict(spec.train.hyperparameters),
            channels=list(spec.train.channels), seed=spec.train.seed, timeout=0))
        runs.append({"model_dir": str(job.model), "code_dir": str(job.code), "env": env})
    channel = next((c for c in ("test", "validation", "train") if c in spec.train.channels),
                   None)
    answers: list[dict[str, Any]] = []
    if channel is not None:
        body = test_rows(spec, JobDir(base / "run-1").channel(channel))
        if body:
            replies = probe(str(python), str(workspace.state_dir),
                            [{"model_dir": r["model_dir"],
                              "handler": _handler(spec, workspace.root)} for r in runs],
                            [{"body_b64": base64.b64encode(body).decode(),
                              "content_type": "text/csv", "accept": "application/json"}])
            answers = [reply[0] for reply in replies]
    check = compare_runs(spec, runs, answers, spec.file.tests.tolerance)
    return CheckResult(check.name, check.kind, check.passed, check.expected, check.actual,
                       check.message, duration_s=time.monotonic() - started)


def test_version(workspace: Workspace, registry: Registry, spec: ModelSpec,
                 record: VersionRecord, *, skip: tuple[str, ...] = (),
                 note: Note) -> TestReport:
    """Run every check of one version and record the report with it."""
    from modelci.envs.uv import ensure_environment

    report = TestReport(spec.name, record.version)
    environment = ensure_environment(workspace.root, spec, progress=note)
    if "reproducibility" not in skip:
        report.checks.append(run_reproducibility(workspace, spec, record,
                                                 environment.python, note))
    if "golden" not in skip:
        report.checks += run_golden(workspace, spec, str(environment.python),
                                    model_dir(workspace, record))
    if "gates" not in skip:
        production = workspace.environments[-1]
        pointer = registry.get_pointer(spec.name, production)
        live = registry.get_version(pointer.version) if pointer else None
        report.checks += check_gates(dict(spec.file.gates), record.metrics,
                                     dict(live.metrics) if live else None,
                                     live.version if live else None)
    summary = {"passed": report.passed, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime()),
               "skipped": list(skip), "checks": [c.to_json() for c in report.checks]}
    registry.update_version(record.version, details={**record.details, "tests": summary})
    actor, ci_url = workspace.actor(), workspace.ci_url()
    failed_gates = [c.name for c in report.checks
                    if c.kind in ("gate", "no_regression") and not c.passed and not c.skipped]
    if failed_gates:
        registry.append_event(Event(kind="gate_failed", model=spec.name, version=record.version,
                                    commit=record.commit, actor=actor, ci_url=ci_url,
                                    details={"gates": failed_gates}))
    registry.append_event(Event(kind="test", model=spec.name, version=record.version,
                                commit=record.commit, actor=actor, ci_url=ci_url,
                                details={"passed": report.passed,
                                         "failed": [c.name for c in report.checks
                                                    if not c.passed and not c.skipped]}))
    return report


def tests_passed(record: VersionRecord) -> bool | None:
    """Whether the version's recorded tests passed; None when it was never tested."""
    tests = record.details.get("tests")
    return None if not isinstance(tests, dict) else bool(tests.get("passed"))
