"""Train the churn classifier: standardised features, logistic regression.

Written for SageMaker's scikit-learn container in script mode and runnable there unchanged:
hyperparameters arrive as `--name value`, each channel is a folder of CSV files named by
`SM_CHANNEL_<NAME>`, the model goes to `SM_MODEL_DIR`, and metrics are printed as `name=value`
lines for the job's metric definitions. It imports nothing of modelci.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

KEY = "customer_id"
LABEL = "label"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Hyperparameters and SageMaker's folders; the folders default to SageMaker's variables."""
    parser = argparse.ArgumentParser(description=__doc__)
    # SageMaker passes a one-letter hyperparameter as `-C`, a longer one as `--name`
    parser.add_argument("-C", "--C", type=float, default=1.0, help="inverse regularisation")
    parser.add_argument("--max_iter", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("MODELCI_SEED", "42")))
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", default=os.environ.get("SM_CHANNEL_TEST"))
    args = parser.parse_args(argv)
    for name in ("model_dir", "train", "test"):
        if getattr(args, name) is None:
            flag = "--" + name.replace("_", "-")
            variable = "SM_MODEL_DIR" if name == "model_dir" else f"SM_CHANNEL_{name.upper()}"
            parser.error(f"{flag} is required (or set {variable})")
    return args


def read_channel(folder: str) -> pd.DataFrame:
    """Every CSV file in a channel folder, in name order, as one frame."""
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV files in channel folder {folder}")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def features_and_label(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Everything but the key and the label is a feature, in file order.

    Plain arrays, not frames: SageMaker's default scikit-learn handler (and modelci's) hands the
    model a NumPy array, and a model fitted on named columns warns at every such prediction.
    """
    x = frame.drop(columns=[KEY, LABEL]).to_numpy(dtype=np.float64)
    return x, frame[LABEL].to_numpy()


def train(args: argparse.Namespace) -> Pipeline:
    """Fit on the train channel, print metrics on the test channel, save `model.joblib`."""
    x_train, y_train = features_and_label(read_channel(args.train))
    x_test, y_test = features_and_label(read_channel(args.test))
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=args.C, max_iter=args.max_iter, random_state=args.seed),
    )
    model.fit(x_train, y_train)

    accuracy = accuracy_score(y_test, model.predict(x_test))
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    print(f"train rows={len(y_train)} test rows={len(y_test)} features={x_train.shape[1]}")
    print(f"accuracy={accuracy:.6f}")
    print(f"roc_auc={auc:.6f}")

    Path(args.model_dir).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, Path(args.model_dir) / "model.joblib")
    return model


def write_failure(error: BaseException) -> None:
    """Leave the reason where SageMaker (and modelci) look for it: `output/failure`."""
    output_data = os.environ.get("SM_OUTPUT_DATA_DIR")
    if output_data:
        failure = Path(output_data).parent / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"{type(error).__name__}: {error}\n{traceback.format_exc()}")


if __name__ == "__main__":
    arguments = parse_args()
    try:
        train(arguments)
    except Exception as error:
        write_failure(error)
        print(f"training failed: {error}", file=sys.stderr)
        raise
