"""Train a logistic regression, written for SageMaker's scikit-learn container (script mode).

It runs unchanged on SageMaker and under modelci: hyperparameters arrive as `--name value`,
channels as folders named by SM_CHANNEL_<NAME>, and the model goes to SM_MODEL_DIR.
"""

import argparse
import glob
import os

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression


def read_channel(folder: str) -> pd.DataFrame:
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    # SageMaker passes a one-letter hyperparameter as `-C`, a longer one as `--name`
    parser.add_argument("-C", "--C", type=float, default=1.0)
    parser.add_argument("--max_iter", type=int, default=200)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", default=os.environ.get("SM_CHANNEL_TEST"))
    args, _ = parser.parse_known_args()

    train = read_channel(args.train)
    features = [c for c in train.columns if c.startswith("f")]
    model = LogisticRegression(C=args.C, max_iter=args.max_iter)
    model.fit(train[features].to_numpy(), train["label"].to_numpy())

    if args.test:
        test = read_channel(args.test)
        accuracy = model.score(test[features].to_numpy(), test["label"].to_numpy())
        print(f"accuracy={accuracy:.4f}")
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))


if __name__ == "__main__":
    main()
