"""Run request bodies through model versions' real serving handlers, in process, inside the
model's own environment: `python -m modelci.runtime.probe < job.json > answers.json`.

The job is `{"models": [{"model_dir", "handler"}], "requests": [{"body_b64", "content_type",
"accept"}]}`; the answer `{"answers": [[{"status", "body_b64", "content_type", "error"}]]}`,
one list per model. modelci's host side starts it through `modelci.testing.probe.probe`.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any


def answer_all(job: dict[str, Any]) -> dict[str, Any]:
    """Answer every request with every model."""
    from modelci.runtime.errors import ServeError
    from modelci.runtime.handlers import load_handler

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


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(answer_all(job), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
