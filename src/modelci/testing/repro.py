"""Reproducibility: train twice on the deterministic sample in fresh job folders, compare the
two models (file digests, then predictions on the test channel) and, when they differ, say
what differs and name the likely causes."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path
from typing import Any

from modelci.runtime.signature import LABEL_COLUMNS, SIGNATURE_FILE
from modelci.spec import ModelSpec
from modelci.testing.golden import difference
from modelci.testing.report import CheckResult

MAX_ROWS = 200
# Variables that change what a job computes, compared between the two runs.
RELEVANT_VARIABLES = (
    "PYTHONHASHSEED",
    "MODELCI_SEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)

# (pattern over the model's code, likely cause)
_SUSPECTS = [
    (
        r"\bnp\.random\.(rand|randn|randint|random|choice|shuffle|permutation|normal|uniform)\(|"
        r"\brandom\.(random|randint|choice|shuffle|sample|uniform)\(|default_rng\(\s*\)",
        "an unseeded random generator (seed it from MODELCI_SEED, or call "
        "modelci.seed_everything())",
    ),
    (
        r"(RandomForest|ExtraTrees|GradientBoosting|MLP|SGD|KMeans|train_test_split|"
        r"shuffle)\w*\((?![^)]*random_state)",
        "an estimator or split without random_state",
    ),
    (
        r"\bset\(|\bhash\(|frozenset\(",
        "set or hash ordering, which depends on PYTHONHASHSEED (modelci fixes it for the job; a "
        "subprocess with its own environment loses it)",
    ),
    (
        r"n_jobs\s*=\s*-1|set_num_threads|ThreadPool|concurrent\.futures",
        "thread-count nondeterminism (parallel reductions in another order)",
    ),
    (r"time\.time\(|datetime\.now\(|date\.today\(", "time-dependent data or features"),
    (
        r"os\.listdir\(|glob\.glob\(|\.iterdir\(\)|\.glob\(",
        "order-dependent data: files listed without sorting",
    ),
]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file the training wrote into a model folder (and its links and folders:
    as an artifact's unpacked copy is recorded). The input signature modelci records into the
    version's folder after its job ended is not the training's output: the run it is compared
    with has none."""
    from modelci.train.unpacked import tree_digests

    return {name: digest for name, digest in tree_digests(folder).items() if name != SIGNATURE_FILE}


def test_rows(spec: ModelSpec, channel_dir: Path) -> bytes | None:
    """Up to MAX_ROWS rows of the test channel as a headerless CSV body, with the key and the
    label columns left out."""
    files = sorted(channel_dir.rglob("*.csv"))
    if not files:
        return None
    drop = set(LABEL_COLUMNS)
    if spec.train.sample and spec.train.sample.key:
        drop.add(spec.train.sample.key)
    with files[0].open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        keep = [i for i, name in enumerate(header) if name not in drop]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for count, row in enumerate(reader):
            if count >= MAX_ROWS:
                break
            writer.writerow([row[i] for i in keep])
    return out.getvalue().encode()


def likely_causes(code_folder: Path) -> list[str]:
    """Causes of nondeterminism that the model's code suggests, most likely first."""
    source = "\n".join(p.read_text(errors="replace") for p in sorted(code_folder.rglob("*.py")))
    return [cause for pattern, cause in _SUSPECTS if re.search(pattern, source)]


def compare_runs(
    spec: ModelSpec, runs: list[dict[str, Any]], answers: list[dict[str, Any]], tolerance: float
) -> CheckResult:
    """The check from two finished runs (`runs[i]`: model_dir, env, code_dir) and each model's
    answer to the same test rows."""
    first, second = (digests(Path(r["model_dir"])) for r in runs)
    differing = sorted(
        name for name in set(first) | set(second) if first.get(name) != second.get(name)
    )
    predictions_differ = None
    if answers:
        bodies = [base64.b64decode(a["body_b64"]).decode(errors="replace") for a in answers]
        if any(a["status"] != 200 for a in answers):
            predictions_differ = "; ".join(a["error"] or "" for a in answers if a["error"])
        else:
            from modelci.testing.golden import decode_answer

            decoded = [decode_answer(a) for a in answers]
            predictions_differ = (
                difference(decoded[0], decoded[1], tolerance, "predictions")
                if bodies[0] != bodies[1]
                else None
            )
    if not predictions_differ and (not differing or answers):
        note = (
            ""
            if not differing
            else (
                f"the artifacts differ byte for byte ({', '.join(differing)}) but predict the same"
            )
        )
        return CheckResult(
            "reproducibility",
            "reproducibility",
            True,
            expected="two trainings agree",
            actual="they agree",
            message=note,
        )
    environment = [
        f"{name}: {runs[0]['env'].get(name)!r} vs {runs[1]['env'].get(name)!r}"
        for name in RELEVANT_VARIABLES
        if runs[0]["env"].get(name) != runs[1]["env"].get(name)
    ]
    causes = likely_causes(Path(runs[0]["code_dir"]))
    lines = [f"files that differ: {', '.join(differing) or 'none'}"]
    if predictions_differ:
        lines.append(f"predictions differ: {predictions_differ}")
    lines.append(
        "same lock, seed and job layout in both runs"
        if not environment
        else "environment differs: " + "; ".join(environment)
    )
    lines.append(
        "likely causes: "
        + (
            "; ".join(causes)
            if causes
            else "none found in the code; check the data's order and native libraries' threading"
        )
    )
    return CheckResult(
        "reproducibility",
        "reproducibility",
        False,
        expected="two trainings agree",
        actual="they differ",
        message="\n".join(lines),
    )
