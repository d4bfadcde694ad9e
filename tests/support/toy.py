"""A tiny model that needs nothing but the standard library, so that its environment builds in
a second or two: train.py writes model.json from the `bias` hyperparameter, inference.py
predicts the sum of a row's values plus the bias. Tests and benchmarks of the pipeline, the
endpoints and the backends use it where the example repository's scikit-learn models would
only cost time."""

from __future__ import annotations

from tests.support.repos import GitRepo

TRAIN_TEMPLATE = """\
import json, os
bias = float(os.environ["SM_HP_BIAS"])
{extra}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({{"bias": bias}}, f)
print("score=0.75")
"""

INFERENCE = """\
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)

def predict_fn(data, model):
    return [float(sum(row)) + model["bias"] for row in data]
"""


def train_script(extra: str = "") -> str:
    """The toy's train.py, with `extra` lines run after the bias is read."""
    return TRAIN_TEMPLATE.format(extra=extra)


# model.toml of a toy model served through its inference.py; `.format(bias=...)`
SERVED_SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ bias = {bias} }}
channels = {{ train = "data/toy/train.csv", test = "data/toy/test.csv" }}
metrics = {{ score = "score=([0-9.]+)" }}

[serve]
handler = "inference.py"
"""


def toy_rows(count: int) -> str:
    """The toy channels' CSV: a key, two features and a label per row."""
    return "id,a,b,label\n" + "".join(f"{i},{i % 3},{i % 5},{i % 2}\n" for i in range(count))


def write_toy(
    repo: GitRepo,
    spec: str,
    *,
    name: str = "toy",
    train: str | None = None,
    inference: str | None = INFERENCE,
    rows: int = 20,
) -> None:
    """A toy model in `models/<name>/` (its model.toml is `spec`; train.py, inference.py and an
    empty requirements.txt) and its channels `data/toy/{train,test}.csv`, with `.modelci/`
    ignored; committed by the caller. `spec=""` or `inference=None` leaves that file out."""
    repo.write(".gitignore", ".modelci/\n")
    if spec:
        repo.write(f"models/{name}/model.toml", spec)
    repo.write(f"models/{name}/train.py", train_script() if train is None else train)
    if inference is not None:
        repo.write(f"models/{name}/inference.py", inference)
    repo.write(f"models/{name}/requirements.txt", "")
    repo.write("data/toy/train.csv", toy_rows(rows))
    repo.write("data/toy/test.csv", toy_rows(rows))


# model.toml of a toy that `modelci test` checks: a sample, and `{gates}`
TESTED_SPEC = """\
[train]
entrypoint = "train.py"
hyperparameters = {{ bias = 0.5 }}
channels = {{ train = "data/toy/train.csv", test = "data/toy/test.csv" }}
metrics = {{ score = "score=([0-9.]+)" }}
sample = {{ fraction = 0.5, key = "id" }}

[serve]
handler = "inference.py"

[gates]
{gates}
"""


def make_toy(repo: GitRepo, *, gates: str = 'score = ">= 0.5"', extra: str = "") -> None:
    """A committed toy with a sample and gates, for `modelci test` (60 rows)."""
    write_toy(repo, TESTED_SPEC.format(gates=gates), train=train_script(extra), rows=60)
    repo.commit("toy model")
