"""The host's log of shadow pairs, with a real store and registry: pairs past the buffer's
bound are dropped and counted, never blocking; what is kept is written in batches through
the store, announced in the registry, and read back by the shadow's reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from modelci.serve import shadowlog
from modelci.serve.shadowlog import PairLog
from modelci.shadow.pairs import Side, pair, read_pairs, sessions
from modelci.workspace import Workspace
from tests.support.repos import GitRepo
from tests.support.toy import write_toy


def test_pairs_past_the_bound_are_dropped_and_counted_and_the_rest_read_back(
    git_repo: Callable[..., GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo()
    write_toy(repo, "")
    repo.commit("toy")
    workspace = Workspace(repo.root)
    monkeypatch.setattr(shadowlog, "MAX_BUFFERED", 4)
    monkeypatch.setattr(shadowlog, "BATCH", 3)
    key = ("toy", "staging", "toy-2", 11)

    def one(i: int) -> dict[str, object]:
        answer = json.dumps({"predictions": [float(i)]}).encode()
        return pair(
            11,
            "toy",
            "staging",
            "toy-staging",
            Side("toy-1", 200, 1.0, answer),
            Side("toy-2", 200, 1.5, answer),
        )

    async def scenario() -> PairLog:
        log = PairLog(workspace, "host-a")
        for i in range(10):
            log.record(key, one(i))  # returns at once, buffered or counted
        log.drop(key)  # a mirrored request not sent (too many in flight)
        assert len(log.buffer) == 4 and log.dropped[key] == 7
        await log.close()
        return log

    log = asyncio.run(scenario())
    assert log.written == 4 and not log.buffer and not log.dropped
    with workspace.registry() as registry:
        found = sessions(registry, "toy", "staging")
    [session] = found.values()
    assert session.event == 11 and session.version == "toy-2"
    assert [b.details["count"] for b in reversed(session.batches)] == [3, 1]
    assert session.dropped == 7
    assert all(b.details["host"] == "host-a" for b in session.batches)
    read = list(read_pairs(workspace.store(), session, limit=100))
    assert sorted(p["live"]["body"] for p in read) == [
        json.dumps({"predictions": [float(i)]}) for i in range(4)
    ]
    assert len(list(read_pairs(workspace.store(), session, limit=2))) == 2
