"""Canary and linear rollouts as the tests and bench/rollout_bench.py drive them: a toy
handler that fails one request in three, the `[deploy.rollout]` table, and client threads that
record every answer with its time and status, failures included."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.hosts import JSON, ROW, Toy
from tests.support.toy import INFERENCE
from tests.support.waiting import wait_until

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


def rollout_seen(toy: Toy) -> dict[str, Any] | None:
    """The rollout `status --json` shows under way in staging, if any."""
    status = toy.modelci("-C", toy.root, "status", "--json")
    assert status.code == 0, status.stdout + status.stderr
    [model] = status.json()["models"]
    staging = model["environments"]["staging"] or {}
    split: dict[str, Any] | None = (staging.get("pending") or {}).get("rollout")
    return split


def linear_rollout(
    toy: Toy, load: Recorder, second: str, *options: str, deadline_s: float
) -> tuple[list[dict[str, Any]], float, float]:
    """Deploy `second` to staging (a linear rollout, `options` added) while `load` runs, until
    the deploy ends and 50 more answers came: every split `status` showed meanwhile, and when
    the deploy began and ended. The deploy must have succeeded."""
    seen: list[dict[str, Any]] = []
    began = time.monotonic()
    deploy = subprocess.Popen(
        [sys.executable, "-m", "modelci", "-C", str(toy.root), "deploy", "toy", "--env",
         "staging", "--json", *options, "--version", second],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip

    def ended() -> bool:
        split = rollout_seen(toy)
        if split is not None and split not in seen:
            seen.append(split)
        return deploy.poll() is not None

    wait_until(ended, "the linear rollout ends", deadline_s=deadline_s)
    finished = time.monotonic()
    out, err = deploy.communicate(timeout=30)
    done = load.count()
    wait_until(lambda: load.count() >= done + 50, "answers after the rollout")
    assert deploy.returncode == 0, out.decode() + err.decode()
    assert b'"status": "deployed"' in out
    return seen, began, finished


def check_linear_steps(
    toy: Toy,
    load: Recorder,
    seen: list[dict[str, Any]],
    window: tuple[float, float],
    first: str,
    second: str,
) -> None:
    """A healthy linear rollout (25 % steps) from `first` to `second` during `window`: every
    step recorded, the split shown by `status`, no request failed, both versions answering
    during it (3.5 and 4.5) and the new one alone after it."""
    steps = [e for e in toy.events("rollout_step") if e.version == second]
    assert sorted(e.details["percent"] for e in steps) == [25, 50, 75]
    assert toy.events("deploy_failed") == []
    assert seen, "status never showed the rollout"
    for split in seen:
        assert split["candidate"] == second and split["previous"] == first
        assert split["candidate_percent"] + split["previous_percent"] == 100
    assert {s["candidate_percent"] for s in seen} <= {0, 25, 50, 75}
    during = load.between(*window)
    assert {a.status for a in during} == {200}
    assert {a.value for a in during} == {3.5, 4.5}
    after = [a for a in load.answers if a.at > window[1]]
    assert after and {(a.status, a.value) for a in after} == {(200, 4.5)}
    assert toy.pointer() == second
