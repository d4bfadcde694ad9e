"""Deploys racing on one endpoint: one that loses the compare-and-set on the pointer (another
deploy moved it between this one's read and its write) ends `superseded`, as one overtaken
while it waited does, changing nothing; never a generic error."""

from __future__ import annotations

from pathlib import Path

from modelci.deploy import open_deployer
from modelci.deploy.rollout import deploy
from modelci.registry import open_registry
from modelci.registry.base import Event, PendingDeploy, Pointer
from modelci.registry.sql import SqlRegistry
from modelci.workspace import Workspace
from tests.support.hosts import REGISTRY, Toy


class OvertakenRegistry(SqlRegistry):
    """A real registry handle on which, right before its first compare-and-set, a second
    handle on the same database moves the pointer to `winner`: the two writers interleave
    in that order, every time."""

    def __init__(self, root: Path, winner: str):
        super().__init__(REGISTRY, root=root)
        self.root = root
        self.winner: str | None = winner

    def set_pointer(
        self,
        model: str,
        environment: str,
        version: str,
        *,
        expected_generation: int | None,
        event: Event,
        pending: PendingDeploy | None = None,
        first: Event | None = None,
    ) -> Pointer:
        if self.winner is not None:
            winner, self.winner = self.winner, None
            with open_registry(REGISTRY, self.root) as other:
                now = other.get_pointer(model, environment)
                other.set_pointer(
                    model,
                    environment,
                    winner,
                    expected_generation=now.generation if now else None,
                    event=Event("deploy", model),
                )
        return super().set_pointer(
            model,
            environment,
            version,
            expected_generation=expected_generation,
            event=event,
            pending=pending,
            first=first,
        )


def _deploy_overtaken(toy: Toy, version: str, winner: str) -> tuple[str, str | None, bool]:
    workspace = Workspace(toy.root)
    with OvertakenRegistry(toy.root, winner) as registry:
        outcome = deploy(
            workspace,
            registry,
            open_deployer(workspace),
            "toy",
            "staging",
            version=version,
            skip_tests=True,
            force=True,
            note=lambda message: None,
        )
    return outcome.status, outcome.reason, outcome.moved


def test_a_deploy_that_loses_the_pointer_race_ends_superseded(toy: Toy) -> None:
    first = toy.version()
    toy.deployed("--version", first, "--skip-tests")
    loser = toy.version(bias=1.5, test=False)
    winner = toy.version(bias=2.5, test=False)
    before = len(toy.events())

    status, reason, moved = _deploy_overtaken(toy, loser, winner)

    assert status == "superseded", reason
    assert not moved  # what counts updates (the pointer race bench) must not count this one
    assert reason is not None
    assert reason.startswith(f"toy-staging: {loser} was superseded by {winner}: "), reason
    assert "another deploy moved the pointer" in reason
    assert toy.pointer() == winner
    # the loser wrote nothing: only the winner's move is new (events come newest first)
    after = toy.events()
    assert len(after) == before + 1, after[: len(after) - before]
    assert (after[0].kind, after[0].to_version) == ("deploy", winner)
    assert not [e for e in after if e.to_version == loser]


def test_a_deploy_overtaken_by_the_same_version_waits_for_it(toy: Toy) -> None:
    first = toy.version()
    toy.deployed("--version", first, "--skip-tests")
    second = toy.version(bias=1.5, test=False)

    status, reason, moved = _deploy_overtaken(toy, second, second)

    assert status == "unchanged", reason
    assert not moved
    assert toy.pointer() == second
    [endpoint] = toy.endpoints().values()
    assert endpoint["version"] == second and endpoint["healthy"]
