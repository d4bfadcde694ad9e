"""Run request bodies through model versions' real serving handlers, in process, inside the
model's own environment: `python -m modelci.testing.probe < job.json > answers.json`.

The job is `{"models": [{"model_dir", "handler"}], "requests": [{"body_b64", "content_type",
"accept"}]}`; the answer `{"answers": [[{"status", "body_b64", "content_type", "error"}]]}`,
one list per model. Standard library and modelci.serve only: this runs in the model's venv.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any


def answer_all(job: dict[str, Any]) -> dict[str, Any]:
    """Answer every request with every model."""
    from modelci.serve.errors import ServeError
    from modelci.serve.handlers import load_handler

    answers: list[list[dict[str, Any]]] = []
    for model in job["models"]:
        handler = load_handler(model["model_dir"], model.get("handler"))
        replies: list[dict[str, Any]] = []
        for request in job["requests"]:
            body = base64.b64decode(request["body_b64"])
            try:
                out, content_type = handler.predict_body(
                    body, request.get("content_type"), request.get("accept")
                )
                replies.append(
                    {
                        "status": 200,
                        "body_b64": base64.b64encode(out).decode(),
                        "content_type": content_type,
                        "error": None,
                    }
                )
            except ServeError as error:
                replies.append(
                    {
                        "status": error.status,
                        "body_b64": "",
                        "content_type": None,
                        "error": str(error),
                    }
                )
        answers.append(replies)
    return {"answers": answers}


def probe(
    python: str,
    state_dir: str,
    models: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    timeout: float = 600,
) -> list[list[dict[str, Any]]]:
    """From modelci's side: run `requests` through each model in its environment's `python`
    (a subprocess with only modelci's runtime on PYTHONPATH); the answers, per model."""
    import os
    import subprocess
    from pathlib import Path

    from modelci.errors import ModelciError
    from modelci.runtime import runtime_dir

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(runtime_dir(Path(state_dir)))
    job = json.dumps({"models": models, "requests": requests})
    done = subprocess.run(
        [python, "-m", "modelci.testing.probe"],
        input=job,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ModelciError(f"the model's handler could not be loaded or run:\n{tail}")
    answers: list[list[dict[str, Any]]] = json.loads(done.stdout)["answers"]
    return answers


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(answer_all(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
