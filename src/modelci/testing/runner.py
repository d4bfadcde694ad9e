"""`modelci test`: every check of a model version, recorded with the version."""

from __future__ import annotations

import base64
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.errors import ConfigError
from modelci.fingerprint import DEFAULT_GOLDEN as DEFAULT_GOLDEN
from modelci.progress import Progress
from modelci.registry.base import Event, Registry, VersionRecord
from modelci.spec import ModelSpec
from modelci.testing.gates import check_gates
from modelci.testing.golden import decode_answer, difference, read_golden, request
from modelci.testing.probe import probe
from modelci.testing.report import CheckResult, TestReport, failure_causes
from modelci.workspace import Workspace

if TYPE_CHECKING:
    from modelci.train.outcome import Rerun

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
    return materialize(workspace.store(), record.artifact_sha256, workspace.state_dir / "models")


def _handler(spec: ModelSpec, root: Path) -> str | None:
    return str(root / spec.folder / spec.file.serve.handler) if spec.file.serve.handler else None


def golden_checks(
    rows: list[Any], shown: str, answers: list[dict[str, Any]], tolerance: float, took: float
) -> list[CheckResult]:
    """Each golden row against the handler's answer to it."""
    results = []
    for row, answer in zip(rows, answers, strict=True):
        name = f"golden:{shown}:{row.line}"
        if answer["status"] != 200:
            results.append(
                CheckResult(
                    name,
                    "golden",
                    False,
                    row.output,
                    None,
                    f"the handler answered {answer['status']}: {answer['error']}",
                    duration_s=took,
                )
            )
            continue
        actual = decode_answer(answer)
        found_difference = difference(row.output, actual, tolerance)
        results.append(
            CheckResult(
                name,
                "golden",
                found_difference is None,
                row.output,
                actual,
                found_difference or "",
                duration_s=took,
            )
        )
    return results


def train_twice(
    workspace: Workspace, spec: ModelSpec, record: VersionRecord, python: Path, note: Progress
) -> tuple[list[dict[str, Any]], bytes | None] | CheckResult:
    """The reproducibility check's two trainings (on the sample, side by side, in fresh job
    folders) and the test rows to compare their predictions on; a CheckResult when a run
    failed."""
    from modelci.train.jobs import run_job

    base = workspace.state_dir / "tests" / f"{record.version}-{time.strftime('%H%M%S')}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    sample = spec.train.sample is not None
    note(
        f"{record.version}: reproducibility: two trainings side by side"
        + (" on the sample" if sample else " (no [train].sample: on the full data)")
    )

    def one(index: int) -> Any:
        return run_job(
            workspace,
            spec,
            None if record.details.get("dirty") else record.commit,
            python,
            base / f"run-{index}",
            sample=sample,
            on_line=None,
        )

    # the two runs are independent: side by side they take the time of one on two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, (1, 2)))
    for index, result in zip((1, 2), results, strict=True):
        if not result.succeeded:
            return CheckResult(
                "reproducibility",
                "reproducibility",
                False,
                message=f"run {index} failed: {result.reason}",
            )
    runs = [_run(spec, base / f"run-{index}", python) for index in (1, 2)]
    return runs, _test_body(spec, base / "run-1")


def train_again(
    workspace: Workspace, spec: ModelSpec, record: VersionRecord, python: Path, rerun: Rerun
) -> tuple[list[dict[str, Any]], bytes | None] | CheckResult:
    """The reproducibility check's two trainings when the version's own training is one of
    them: `rerun`, the same job started beside it (`run` starts it), is the other; the version's
    model is its recorded artifact. A CheckResult when the second run failed."""
    result = rerun.job.wait()
    if not result.succeeded:
        return CheckResult(
            "reproducibility",
            "reproducibility",
            False,
            message=f"the second run failed: {result.reason}",
        )
    runs = [
        _run(spec, rerun.trained_root, python, model_dir(workspace, record)),
        _run(spec, rerun.job_root, python),
    ]
    return runs, _test_body(spec, rerun.job_root)


def _run(
    spec: ModelSpec, job_root: Path, python: Path, model: Path | None = None
) -> dict[str, Any]:
    """One finished training as the check compares it: its model folder (`model`, else the
    job's), its code and the variables it ran with."""
    from modelci.runtime.jobdir import JobDir
    from modelci.train.base import TrainingJob
    from modelci.train.local import child_environment

    job = JobDir(job_root)
    env = child_environment(
        TrainingJob(
            name="",
            job=job,
            python=python,
            entrypoint=spec.train.entrypoint,
            hyperparameters=dict(spec.train.hyperparameters),
            channels=list(spec.train.channels),
            seed=spec.train.seed,
            timeout=0,
        )
    )
    return {"model_dir": str(model or job.model), "code_dir": str(job.code), "env": env}


def _test_body(spec: ModelSpec, job_root: Path) -> bytes | None:
    """The rows both models predict: up to MAX_ROWS of a job's test (else validation, else
    train) channel."""
    from modelci.runtime.jobdir import JobDir
    from modelci.testing.repro import test_rows

    channel = next((c for c in ("test", "validation", "train") if c in spec.train.channels), None)
    return test_rows(spec, JobDir(job_root).channel(channel)) if channel else None


def test_version(
    workspace: Workspace,
    registry: Registry,
    spec: ModelSpec,
    record: VersionRecord,
    *,
    skip: tuple[str, ...] = (),
    note: Progress,
    rerun: Rerun | None = None,
) -> TestReport:
    """Run every check of one version and record the report with it. With `rerun` (the
    version's own job run again beside it), reproducibility compares the version's training
    with that run instead of training twice more.

    The golden rows and the reproducibility runs' predictions go through the real handler in
    one probe process: the model's libraries load once; two byte-identical models need no
    prediction to agree."""
    import tempfile

    from modelci.fingerprint import checks_digest
    from modelci.train.jobs import export, spec_at

    if record.details.get("dirty"):  # a --dirty version: the work tree is what it was made of
        return _test_tree(workspace, registry, spec, record, workspace.root, skip, note, rerun)
    # a committed version is judged by its commit alone (spec, gates, golden file, handler):
    # nothing uncommitted changes what is recorded with it
    spec = spec_at(workspace, spec.name, record.commit, dirty=False)
    (workspace.state_dir / "tests").mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix=f"{record.version}-", dir=workspace.state_dir / "tests"))
    try:
        export(workspace.root, record.commit, [spec.folder], tree)
        golden = tree / spec.folder / (spec.file.tests.golden or DEFAULT_GOLDEN)
        checks = checks_digest(
            spec.file.model_dump(mode="json"), golden.read_bytes() if golden.is_file() else None
        )
        return _test_tree(workspace, registry, spec, record, tree, skip, note, rerun, checks)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _test_tree(
    workspace: Workspace,
    registry: Registry,
    spec: ModelSpec,
    record: VersionRecord,
    tree: Path,
    skip: tuple[str, ...],
    note: Progress,
    rerun: Rerun | None = None,
    checks: str | None = None,
) -> TestReport:
    """test_version's checks, the model's files (handler, golden file) read from `tree`;
    `checks` (the digest of what judged it) is recorded with the results."""
    from modelci.envs.uv import ensure_environment
    from modelci.testing.repro import compare_runs, digests

    report = TestReport(spec.name, record.version)
    environment = ensure_environment(workspace.root, spec, progress=note)
    handler = _handler(spec, tree)
    started = time.monotonic()

    repro: tuple[list[dict[str, Any]], bytes | None] | CheckResult | None = None
    if "reproducibility" not in skip and rerun is not None:
        note(f"{record.version}: reproducibility: its training against a second run beside it")
        repro = train_again(workspace, spec, record, environment.python, rerun)
    elif "reproducibility" not in skip:
        repro = train_twice(workspace, spec, record, environment.python, note)
    golden: tuple[list[Any], str] | None = None
    if "golden" not in skip:
        found = golden_path(spec, tree)
        golden = (read_golden(*found), found[1]) if found else None

    models: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    if golden and golden[0]:
        models.append({"model_dir": str(model_dir(workspace, record)), "handler": handler})
        requests += [request(row) for row in golden[0]]
    compare = (
        isinstance(repro, tuple)
        and repro[1] is not None
        and len({frozenset(digests(Path(run["model_dir"])).items()) for run in repro[0]}) > 1
    )
    if isinstance(repro, tuple) and compare:
        models += [{"model_dir": run["model_dir"], "handler": handler} for run in repro[0]]
        requests.append(
            {
                "body_b64": base64.b64encode(repro[1] or b"").decode(),
                "content_type": "text/csv",
                "accept": "application/json",
            }
        )
    answers = (
        probe(str(environment.python), str(workspace.state_dir), models, requests) if models else []
    )

    if isinstance(repro, CheckResult):
        report.checks.append(repro)
    elif repro is not None:
        pair = [answers[-2][-1], answers[-1][-1]] if compare else []
        check = compare_runs(spec, repro[0], pair, spec.file.tests.tolerance)
        report.checks.append(
            CheckResult(
                check.name,
                check.kind,
                check.passed,
                check.expected,
                check.actual,
                check.message,
                duration_s=time.monotonic() - started,
            )
        )
    if "golden" not in skip:
        if golden is None:
            report.checks.append(
                CheckResult(
                    "golden",
                    "golden",
                    True,
                    skipped=True,
                    message="skipped: no golden file (see `modelci golden record`)",
                )
            )
        elif golden[0]:
            rows = golden[0]
            report.checks += golden_checks(
                rows, golden[1], answers[0][: len(rows)], spec.file.tests.tolerance, 0.0
            )
    if "gates" not in skip:
        production = workspace.environments[-1]
        pointer = registry.get_pointer(spec.name, production)
        live = registry.get_version(pointer.version) if pointer else None
        report.checks += check_gates(
            dict(spec.file.gates),
            record.metrics,
            dict(live.metrics) if live else None,
            live.version if live else None,
        )
    _record(workspace, registry, spec, record, report, skip, checks)
    return report


def _record(
    workspace: Workspace,
    registry: Registry,
    spec: ModelSpec,
    record: VersionRecord,
    report: TestReport,
    skip: tuple[str, ...],
    checks: str | None,
) -> None:
    """Keep the report with the version and log it (and any failed gate) as events."""
    summary = {
        "passed": report.passed,
        "checks_digest": checks,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "skipped": list(skip),
        "checks": [c.to_json() for c in report.checks],
    }
    registry.update_version(record.version, details={**record.details, "tests": summary})
    actor, ci_url = workspace.actor(), workspace.ci_url()
    failed_gates = [
        c.name
        for c in report.checks
        if c.kind in ("gate", "no_regression") and not c.passed and not c.skipped
    ]
    if failed_gates:
        registry.append_event(
            Event(
                kind="gate_failed",
                model=spec.name,
                version=record.version,
                commit=record.commit,
                actor=actor,
                ci_url=ci_url,
                details={"gates": failed_gates},
            )
        )
    registry.append_event(
        Event(
            kind="test",
            model=spec.name,
            version=record.version,
            commit=record.commit,
            actor=actor,
            ci_url=ci_url,
            details={
                "passed": report.passed,
                "failed": [c.name for c in report.checks if not c.passed and not c.skipped],
                "failures": failure_causes([c.to_json() for c in report.checks]),
            },
        )
    )


def tests_passed(record: VersionRecord) -> bool | None:
    """Whether the version's recorded tests passed; None when it was never tested."""
    tests = record.details.get("tests")
    return None if not isinstance(tests, dict) else bool(tests.get("passed"))
