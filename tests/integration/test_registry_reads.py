"""The registry's reads for overviews (the dashboard, reports), on SQLite and on a real
PostgreSQL server: event filters, each model's newest version, versions by name, and what each
environment pointed to at a given moment; the base class's defaults must agree with the SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelci.registry import Event, Registry, VersionRecord
from modelci.registry.base import Registry as BaseRegistry

SHA = "0123456789abcdef0123456789abcdef01234567"


def _fill(registry: Registry) -> list[datetime]:
    """Two models; churn deployed a, then b, then undeployed from staging; price deployed once;
    an alias; a failed deploy (moves nothing). The moments just after each pointer change."""
    for version in ("churn-aaaaaaaaaaaa", "churn-bbbbbbbbbbbb", "price-cccccccccccc"):
        registry.add_version(VersionRecord(version, version.split("-")[0], SHA, status="ready"))
    moments = []

    def move(model: str, environment: str, version: str | None, actor: str) -> None:
        pointer = registry.get_pointer(model, environment)
        event = Event(kind="deploy" if version else "undeploy", model=model, actor=actor)
        if version is None:
            assert pointer is not None
            registry.clear_pointer(
                model, environment, expected_generation=pointer.generation, event=event
            )
        else:
            registry.set_pointer(
                model,
                environment,
                version,
                expected_generation=pointer.generation if pointer else None,
                event=event,
            )
        moments.append(registry.events(limit=1)[0].time)  # type: ignore[arg-type]

    move("churn", "staging", "churn-aaaaaaaaaaaa", "alice")
    move("churn", "staging", "churn-bbbbbbbbbbbb", "bob")
    move("churn", "@latest", "churn-bbbbbbbbbbbb", "bob")
    registry.append_event(
        Event(
            kind="deploy_failed",
            model="churn",
            environment="staging",
            from_version="churn-bbbbbbbbbbbb",
            to_version="churn-aaaaaaaaaaaa",
        )
    )
    move("price", "production", "price-cccccccccccc", "alice")
    move("churn", "staging", None, "alice")
    return moments


def test_events_filter_by_environment_actor_kinds_and_time(registry: Registry) -> None:
    moments = _fill(registry)
    by_bob = registry.events(actor="bob")
    assert [e.to_version for e in by_bob] == ["churn-bbbbbbbbbbbb"] * 2
    staging = registry.events("churn", environment="staging")
    assert [e.kind for e in staging] == ["undeploy", "deploy_failed", "deploy", "deploy"]
    moves = registry.events(kinds=frozenset({"undeploy"}), environment="staging")
    assert len(moves) == 1 and moves[0].from_version == "churn-bbbbbbbbbbbb"
    early = registry.events(until=moments[1])
    assert [e.actor for e in early] == ["bob", "alice"]
    assert registry.events(until=moments[0] - timedelta(days=1)) == []


def test_what_served_at_each_moment(registry: Registry) -> None:
    moments = _fill(registry)
    before_all = moments[0] - timedelta(microseconds=1)
    assert registry.served_at(before_all) == {}
    assert registry.served_at(moments[0]) == {("churn", "staging"): "churn-aaaaaaaaaaaa"}
    # the failed deploy after the alias moved nothing
    assert registry.served_at(moments[3] - timedelta(microseconds=1)) == {
        ("churn", "staging"): "churn-bbbbbbbbbbbb",
        ("churn", "@latest"): "churn-bbbbbbbbbbbb",
    }
    now = registry.served_at(datetime.now(UTC))
    assert now == {
        ("churn", "staging"): None,  # undeployed
        ("churn", "@latest"): "churn-bbbbbbbbbbbb",
        ("price", "production"): "price-cccccccccccc",
    }
    # the base class's reading of the log agrees with the SQL one
    assert BaseRegistry.served_at(registry, datetime.now(UTC)) == now
    assert BaseRegistry.served_at(registry, moments[0]) == registry.served_at(moments[0])


def test_newest_versions_and_versions_by_name(registry: Registry) -> None:
    _fill(registry)
    newest = registry.newest_versions()
    assert {m: r.version for m, r in newest.items()} == {
        "churn": "churn-bbbbbbbbbbbb",
        "price": "price-cccccccccccc",
    }
    assert BaseRegistry.newest_versions(registry) == newest
    named = registry.versions_named(["churn-aaaaaaaaaaaa", "price-cccccccccccc", "nope-1"])
    assert sorted(named) == ["churn-aaaaaaaaaaaa", "price-cccccccccccc"]
    assert BaseRegistry.versions_named(registry, ["churn-aaaaaaaaaaaa", "nope-1"]) == {
        "churn-aaaaaaaaaaaa": named["churn-aaaaaaaaaaaa"]
    }
