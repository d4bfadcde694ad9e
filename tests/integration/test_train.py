"""`modelci train` on real git repositories, real virtualenvs and real processes: the
SageMaker script-mode contract, clean exports, failures, timeouts and the fingerprint cache."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelci.registry import open_registry
from modelci.runtime.signature import SIGNATURE_FILE
from tests.support.cli import CliResult
from tests.support.repos import GitRepo

Run = Callable[..., CliResult]

# A training script that imports only the standard library and records what it was given.
CONTRACT_SCRIPT = """\
import json, os, sys
seen = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "name": __name__,
    "file": __file__,
    "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "MODELCI_"))
            or k == "PYTHONHASHSEED"},
    "channels": {c: sorted(os.listdir(os.environ["SM_CHANNEL_" + c.upper()]))
                 for c in json.loads(os.environ["SM_CHANNELS"])},
    "hyperparameters_json": json.load(open(os.path.join(
        os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"))),
}
try:
    import modelci  # noqa: F401
    seen["modelci_importable"] = True
except ImportError:
    seen["modelci_importable"] = False
rows = sum(1 for _ in open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"))) - 1
print("rows=%d" % rows)
print("VERSION_MARK=v1")
print("score=0.5")
print("score=0.75")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f, sort_keys=True)
"""

MODEL_TOML = """\
[model]
requirements = "requirements.txt"

[train]
entrypoint = "train.py"
hyperparameters = { C = 1.0, max_iter = 200, solver = "lbfgs", fit_intercept = true }
seed = 7
channels = { train = "data/toy/train.csv", extra = "data/toy/extra" }
metrics = { score = "score=([0-9.]+)" }
sample = { fraction = 0.25, key = "id" }
timeout = 120
"""


@pytest.fixture
def toy(git_repo: Callable[..., GitRepo]) -> GitRepo:
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write("models/toy/model.toml", MODEL_TOML)
    repo.write("models/toy/train.py", CONTRACT_SCRIPT)
    repo.write("models/toy/requirements.txt", "")  # nothing but the standard library
    repo.write("data/toy/train.csv", "id,x\n" + "".join(f"{i},{i}\n" for i in range(400)))
    repo.write("data/toy/extra/a.txt", "a")
    repo.write("data/toy/extra/b.txt", "b")
    repo.commit("toy model")
    return repo


def train(modelci: Run, repo: GitRepo, *args: str) -> tuple[CliResult, dict[str, Any]]:
    result = modelci("-C", repo.root, "train", *args, "--json")
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    return result, document


def unpacked(repo: GitRepo, sha256: str, tmp_path: Path) -> Path:
    archive = repo.root / ".modelci/artifacts/sha256" / sha256[:2] / sha256
    target = tmp_path / f"unpacked-{sha256[:8]}"
    with tarfile.open(archive) as opened:
        opened.extractall(target, filter="data")
    return target


def test_script_mode_contract(toy: GitRepo, modelci: Run, tmp_path: Path) -> None:
    result, document = train(modelci, toy, "toy")
    assert result.code == 0, result.stdout + result.stderr
    version = document["versions"][0]
    assert version["version"] == f"toy-{toy.sha()[:12]}"
    assert version["status"] == "ready" and version["commit"] == toy.sha()
    assert version["metrics"] == {"score": 0.75}  # the last value the log printed
    seen = json.loads(
        (unpacked(toy, version["artifact"]["sha256"], tmp_path) / "seen.json").read_text()
    )
    # hyperparameters: sorted, one-letter names with one dash, str() of each value
    assert seen["argv"] == [
        "-C",
        "1.0",
        "--fit_intercept",
        "True",
        "--max_iter",
        "200",
        "--solver",
        "lbfgs",
    ]
    # hyperparameters.json: every value JSON-encoded, as SageMaker's SDK writes it
    assert seen["hyperparameters_json"] == {
        "C": "1.0",
        "max_iter": "200",
        "solver": '"lbfgs"',
        "fit_intercept": "true",
    }
    env = seen["env"]
    assert json.loads(env["SM_HPS"]) == {
        "C": 1.0,
        "max_iter": 200,
        "solver": "lbfgs",
        "fit_intercept": True,
    }
    assert env["SM_HP_SOLVER"] == "lbfgs" and env["SM_HP_C"] == "1.0"
    assert env["SM_HP_FIT_INTERCEPT"] == "true"
    assert json.loads(env["SM_CHANNELS"]) == ["extra", "train"]
    assert env["SM_CHANNEL_TRAIN"].endswith("/input/data/train")
    assert env["SM_MODEL_DIR"].endswith("/model")
    assert env["SM_OUTPUT_DATA_DIR"].endswith("/output/data")
    assert env["SM_NUM_GPUS"] == "0" and int(env["SM_NUM_CPUS"]) >= 1
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["MODELCI_SEED"] == "7" and env["PYTHONHASHSEED"] == "7"
    assert seen["cwd"].endswith("/code")
    # as `python train.py` runs it (the job's own process then records the signature)
    assert seen["name"] == "__main__" and seen["path0"] == seen["cwd"]
    assert seen["file"] == seen["cwd"] + "/train.py"
    assert seen["channels"] == {"train": ["train.csv"], "extra": ["a.txt", "b.txt"]}
    assert seen["modelci_importable"] is False


# model_fn crashes the training job's own process (a real SIGSEGV) when it loads the model
# to record the signature there; the record made apart, by `modelci.runtime.introspection`,
# leaves a mark beside the model folder
CRASHING_HANDLER = """\
import json, os, signal, sys

def model_fn(model_dir):
    if sys.argv[0] == "train.py":
        os.kill(os.getpid(), signal.SIGSEGV)
    open(os.path.join(model_dir, "..", "recorded-apart"), "w").close()
    return {}

def predict_fn(data, model):
    return [0.0 for row in data]
"""


@pytest.mark.parametrize("ending", ["crash", "os._exit"])
def test_the_signature_is_recorded_apart_when_the_jobs_process_cannot(
    git_repo: Callable[..., GitRepo], modelci: Run, ending: str
) -> None:
    """The record crashes the job's process after its script succeeded, or the script ends
    its own process: the version is trained all the same, and the signature is recorded in a
    process of its own."""
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write(
        "models/toy/model.toml",
        '[train]\nentrypoint = "train.py"\n\n[serve]\nhandler = "inference.py"\n',
    )
    script = "print('trained', flush=True)\n"
    repo.write(
        "models/toy/train.py", script + ("import os\nos._exit(0)\n" if ending != "crash" else "")
    )
    repo.write("models/toy/inference.py", CRASHING_HANDLER)
    repo.write("models/toy/requirements.txt", "")
    repo.commit("toy model")
    result, document = train(modelci, repo, "toy")
    assert result.code == 0, result.stdout + result.stderr
    [version] = document["versions"]
    assert version["status"] == "ready"
    [job] = (repo.root / ".modelci/jobs").iterdir()
    report = job / "modelci-signature-report.json"
    if ending == "crash":
        assert json.loads(report.read_text()) == {"state": "started"}
    else:
        assert not report.exists()
    assert (job / "recorded-apart").exists()
    assert "trained" in (job / "output/log.txt").read_text()


def test_a_record_that_fails_in_the_job_is_reported_not_retried(
    git_repo: Callable[..., GitRepo], modelci: Run
) -> None:
    """The model cannot be loaded for its signature in the job's process: the version is
    trained all the same, the error is shown, and no second process meets it again."""
    repo = git_repo()
    repo.write(".gitignore", ".modelci/\n")
    repo.write(
        "models/toy/model.toml",
        '[train]\nentrypoint = "train.py"\n\n[serve]\nhandler = "inference.py"\n',
    )
    repo.write("models/toy/train.py", "print('trained', flush=True)\n")
    repo.write(
        "models/toy/inference.py",
        CRASHING_HANDLER.replace(
            "os.kill(os.getpid(), signal.SIGSEGV)", "raise RuntimeError('no model in here')"
        ),
    )
    repo.write("models/toy/requirements.txt", "")
    repo.commit("toy model")
    result = modelci("-C", repo.root, "train", "toy")
    assert result.code == 0, result.stdout + result.stderr
    assert "no input signature recorded: RuntimeError: no model in here" in result.stderr
    with open_registry("sqlite:///.modelci/registry.db", repo.root) as registry:
        record = registry.get_version(f"toy-{repo.sha()[:12]}")
        assert record is not None and record.status == "ready"
    [job] = (repo.root / ".modelci/jobs").iterdir()
    report = json.loads((job / "modelci-signature-report.json").read_text())
    assert report == {"state": "failed", "error": "RuntimeError: no model in here"}
    assert not (job / "recorded-apart").exists()


def test_version_record_and_event(
    toy: GitRepo, modelci: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/models")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    result, _ = train(modelci, toy, "toy")
    assert result.code == 0
    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        record = registry.get_version(f"toy-{toy.sha()[:12]}")
        assert record is not None
        assert record.status == "ready" and record.fingerprint and record.lock_hash
        assert record.actor == "ci-bot"
        assert record.ci_url == "https://github.example/team/models/actions/runs/42"
        assert record.details["duration_s"] > 0 and record.details["log_sha256"]
        [event] = registry.events("toy")
        assert (event.kind, event.version, event.commit) == ("train", record.version, toy.sha())
        assert event.ci_url == record.ci_url


def test_clean_export_ignores_uncommitted_changes(toy: GitRepo, modelci: Run) -> None:
    toy.write("models/toy/train.py", CONTRACT_SCRIPT.replace("v1", "v2"))
    result = modelci("-C", toy.root, "train", "toy")
    assert result.code == 0
    assert "VERSION_MARK=v1" in result.stderr and "VERSION_MARK=v2" not in result.stderr

    dirty, document = train(modelci, toy, "toy", "--dirty")
    assert dirty.code == 0
    assert document["versions"][0]["version"] == f"toy-{toy.sha()[:12]}-dirty"
    job_log = Path(document["versions"][0]["job_dir"]) / "output" / "log.txt"
    assert "VERSION_MARK=v2" in job_log.read_text()


def test_fingerprint_reuse_and_force(toy: GitRepo, modelci: Run) -> None:
    first, doc1 = train(modelci, toy, "toy")
    assert first.code == 0
    toy.write("README.md", "unrelated\n")
    toy.commit("docs only")
    second, doc2 = train(modelci, toy, "toy")
    assert second.code == 0
    [v2] = doc2["versions"]
    assert v2["reused_from"] == doc1["versions"][0]["version"]
    assert v2["artifact"] == doc1["versions"][0]["artifact"]
    _, doc3 = train(modelci, toy, "toy")
    assert doc3["versions"][0]["cached"] is True  # same commit: already trained

    forced, doc4 = train(modelci, toy, "toy", "--force")
    assert forced.code == 0 and doc4["versions"][0]["reused_from"] is None
    assert doc4["versions"][0]["job_dir"] is not None  # it really ran

    toy.write("data/toy/train.csv", "id,x\n1,1\n")
    toy.commit("new data")
    _, doc5 = train(modelci, toy, "toy")
    assert doc5["versions"][0]["reused_from"] is None and doc5["versions"][0]["job_dir"]


def test_a_cache_hit_loads_neither_pydantic_nor_sqlalchemy(toy: GitRepo, modelci: Run) -> None:
    """The hit paths answer (and record) through tomllib and sqlite3 alone: their speed."""
    first, doc1 = train(modelci, toy, "toy")
    assert first.code == 0
    toy.write("README.md", "unrelated\n")
    toy.commit("docs only")
    code = (
        "import json, sys\n"
        "from modelci.cli import run\n"
        f"code = run(['-C', {str(toy.root)!r}, 'train', 'toy', '--json'])\n"
        "print(json.dumps([code, sorted(m for m in ('pydantic', 'sqlalchemy') "
        "if m in sys.modules)]))\n"
    )

    def train_in_a_new_process() -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        *document, loaded = done.stdout.strip().splitlines()
        assert json.loads(loaded) == [0, []], done.stderr
        [version] = json.loads("\n".join(document))["versions"]
        return dict(version)

    reused = train_in_a_new_process()
    assert reused["reused_from"] == doc1["versions"][0]["version"]
    assert train_in_a_new_process()["cached"] is True

    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        [event] = [e for e in registry.events("toy") if e.version == reused["version"]]
        record = registry.get_version(reused["version"])
    assert event.kind == "train" and event.details == {"reused_from": reused["reused_from"]}
    assert record is not None and record.artifact_sha256 == reused["artifact"]["sha256"]


@pytest.mark.parametrize("seed", ['"42"', "true"])
def test_a_seed_of_the_wrong_type_stops_the_fast_path_too(
    toy: GitRepo, modelci: Run, seed: str
) -> None:
    """With a registry in place, train's fast path reads the spec through the spec cache:
    it judges `seed = "42"` and `seed = true` as `validate` does, on a miss and on a hit."""
    assert train(modelci, toy, "toy")[0].code == 0
    toy.write("models/toy/model.toml", MODEL_TOML.replace("seed = 7", f"seed = {seed}"))
    toy.commit("a seed of the wrong type")
    for _ in range(2):
        result, document = train(modelci, toy, "toy")
        assert result.code == 2, result.stdout
        error = document["error"]
        assert (error["file"], error["key"]) == ("models/toy/model.toml", "train.seed")


def test_failure_reason_from_output_failure(toy: GitRepo, modelci: Run) -> None:
    toy.write(
        "models/toy/train.py",
        (
            "import os\nprint('starting')\n"
            "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w')"
            ".write('label column missing')\nraise SystemExit(3)\n"
        ),
    )
    toy.commit("broken")
    result, document = train(modelci, toy, "toy")
    assert result.code == 1
    [version] = document["versions"]
    assert version["status"] == "failed" and version["reason"] == "label column missing"
    with open_registry("sqlite:///.modelci/registry.db", toy.root) as registry:
        record = registry.get_version(version["version"])
        assert record is not None and record.status == "failed"
        assert record.details["reason"] == "label column missing"
        assert [e.kind for e in registry.events("toy")] == ["train_failed"]
    human = modelci("-C", toy.root, "train", "toy")
    assert human.code == 1 and "label column missing" in human.stderr


def test_failure_reason_from_log_tail(toy: GitRepo, modelci: Run) -> None:
    toy.write("models/toy/train.py", "print('loading')\nraise ValueError('bad shape (3, 4)')\n")
    toy.commit("broken")
    result, document = train(modelci, toy, "toy")
    assert result.code == 1
    assert "ValueError: bad shape (3, 4)" in document["versions"][0]["reason"]


def test_timeout_stops_the_job(toy: GitRepo, modelci: Run) -> None:
    toy.write("models/toy/model.toml", MODEL_TOML.replace("timeout = 120", "timeout = 2"))
    toy.write(
        "models/toy/train.py",
        (
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "open('child.pid', 'w').write(str(child.pid))\n"
            "print('sleeping', flush=True)\ntime.sleep(120)\n"
        ),
    )
    toy.commit("slow")
    result, document = train(modelci, toy, "toy")
    assert result.code == 1
    [version] = document["versions"]
    assert "timed out after 2 s" in version["reason"]
    assert version["duration_s"] < 60
    pid = int((Path(version["job_dir"]) / "code" / "child.pid").read_text())
    assert (
        not Path(f"/proc/{pid}").exists()
        or Path(f"/proc/{pid}/status").read_text().find("zombie") != -1
    )


def test_sample_trains_on_the_sample_and_records_nothing(toy: GitRepo, modelci: Run) -> None:
    result, document = train(modelci, toy, "toy", "--sample")
    assert result.code == 0
    [version] = document["versions"]
    assert version["recorded"] is False
    log = (Path(version["job_dir"]) / "output" / "log.txt").read_text()
    rows = int(log.split("rows=")[1].split()[0])
    assert 70 <= rows <= 130  # a quarter of 400, chosen by hash
    assert (
        not (toy.root / ".modelci/registry.db").exists()
        or modelci("-C", toy.root, "history", "toy", "--json").json()["events"] == []
    )


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (
            lambda t: t.replace('entrypoint = "train.py"', 'entrypoint = "fit.py"'),
            "train.entrypoint",
        ),
        (lambda t: t.replace('"data/toy/extra"', '"data/toy/missing"'), "train.channels.extra"),
        (lambda t: t.replace("C = 1.0", "C = [1.0, 2.0]"), "train.hyperparameters.C"),
    ],
)
def test_bad_input_exits_2_before_any_job(
    toy: GitRepo, modelci: Run, edit: Callable[[str], str], key: str
) -> None:
    toy.write("models/toy/model.toml", edit(MODEL_TOML))
    toy.commit("bad spec")
    result, document = train(modelci, toy, "toy")
    assert result.code == 2
    assert document["error"]["key"] == key
    assert not (toy.root / ".modelci/jobs").exists()


def test_unknown_model_lists_known_ones(toy: GitRepo, modelci: Run) -> None:
    result, document = train(modelci, toy, "toys")
    assert result.code == 2
    assert "known models: toy" in document["error"]["message"]


@pytest.mark.slow
def test_unchanged_sagemaker_sklearn_script(
    git_repo: Callable[..., GitRepo], modelci: Run, tmp_path: Path
) -> None:
    """The example churn model is a script for SageMaker's scikit-learn container; it imports
    nothing of modelci and trains here unchanged."""
    repo = git_repo(examples=True)
    script = (repo.root / "models/churn/train.py").read_text()
    assert "import modelci" not in script and "from modelci" not in script
    result, document = train(modelci, repo, "churn")
    assert result.code == 0, result.stdout + result.stderr
    [version] = document["versions"]
    assert version["metrics"]["accuracy"] >= 0.85
    model_dir = unpacked(repo, version["artifact"]["sha256"], tmp_path)
    assert (model_dir / "model.joblib").exists()
    # the input signature travels with the artifact: the model's 20 columns, named by the
    # train channel once its key (the sample key) and label are left out, refusing NaN
    signature = json.loads((model_dir / SIGNATURE_FILE).read_text())
    assert [column["name"] for column in signature["columns"]] == [f"f{i}" for i in range(20)]
    assert {(c["dtype"], c["nan"], c["infinity"]) for c in signature["columns"]} == {
        ("number", False, False)
    }
    assert signature["sources"] == ["model", "channel train", "probe"]
    # recorded by the training job's own process, which had scikit-learn loaded already
    [job] = (repo.root / ".modelci/jobs").iterdir()
    assert json.loads((job / "modelci-signature-report.json").read_text()) == {"state": "recorded"}
