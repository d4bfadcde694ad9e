"""A tiny model that needs nothing but the standard library, so that its environment builds in
a second or two: train.py writes model.json from the `bias` hyperparameter, inference.py
predicts the sum of a row's values plus the bias. Tests and benchmarks of the pipeline, the
endpoints and the backends use it where the example repository's scikit-learn models would
only cost time."""

from __future__ import annotations

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
