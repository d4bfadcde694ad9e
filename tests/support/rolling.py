"""Canary and linear rollouts as the tests and bench/rollout_bench.py drive them: a toy
handler that fails one request in three, the `[deploy.rollout]` table, and client threads that
record every answer with its time and status, failures included."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx

from tests.support.hosts import JSON, ROW
from tests.support.toy import INFERENCE

# A version whose handler fails every third call of predict_fn, the smoke request (the all-zero
# row of the test channel) left out: it always passes, however long the process has lived
FAILS_ONE_IN_THREE = (
    INFERENCE
    + """
_predict = predict_fn
_calls = [0]

def predict_fn(data, model):
    if all(float(sum(row)) == 0 for row in data):
        return _predict(data, model)
    _calls[0] += 1
    if _calls[0] % 3 == 0:
        raise RuntimeError("every third request fails")
    return _predict(data, model)
"""
)


def rollout_table(strategy: str, **keys: object) -> str:
    """`[deploy.rollout]` of modelci.toml with `strategy` and `keys`."""
    lines = [f'strategy = "{strategy}"']
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "[deploy.rollout]\n" + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Answered:
    at: float  # time.monotonic() when the answer came
    status: int  # 0: no answer (a transport error)
    value: float | None  # the prediction, when it answered 200


class Recorder:
    """Threads posting ROW to one URL until stopped (or `cap` requests), every answer kept."""

    def __init__(self, url: str, threads: int = 6, pause_s: float = 0.01, cap: int = 200_000):
        self.url = url
        self.cap = cap
        self.pause_s = pause_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[Answered] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Recorder:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(headers=JSON, timeout=30) as client:
            while not self.stop.is_set() and self.count() < self.cap:
                try:
                    answer = client.post(self.url, content=ROW)
                    status = answer.status_code
                    value = answer.json()["predictions"][0] if status == 200 else None
                except (httpx.HTTPError, ValueError, KeyError):
                    status, value = 0, None
                with self.lock:
                    self.answers.append(Answered(time.monotonic(), status, value))
                self.stop.wait(self.pause_s)

    def count(self) -> int:
        with self.lock:
            return len(self.answers)

    def between(self, began: float, ended: float) -> list[Answered]:
        with self.lock:
            return [a for a in self.answers if began <= a.at <= ended]
