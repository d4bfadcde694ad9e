"""The SQLite registry through plain sqlite3 (train's quick paths): what it reads and writes
must be exactly what the SQL registry reads and writes."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from modelci.registry import Event, VersionRecord, open_registry
from modelci.registry.quick import add_reused_version, quick_look

SHA = "0123456789abcdef0123456789abcdef01234567"
URL = "sqlite:///.modelci/registry.db"


def _registry(root: Path):  # type: ignore[no-untyped-def]
    registry = open_registry(URL, root)
    registry.upgrade()
    return registry


def _source() -> VersionRecord:
    return VersionRecord(
        version="churn-aaaaaaaaaaaa",
        model="churn",
        commit="a" * 40,
        status="ready",
        fingerprint="f" * 64,
        artifact_uri="file:///store/sha256/ab/abc",
        artifact_sha256="b" * 64,
        metrics={"accuracy": 0.91},
        lock_hash="l" * 64,
        actor="ci",
        ci_url=None,
        details={"duration_s": 5.1, "log": ["a", "b"]},
    )


def _reuse(version: str = "churn-cccccccccccc") -> tuple[VersionRecord, Event]:
    record = VersionRecord(
        version=version,
        model="churn",
        commit="c" * 40,
        status="ready",
        fingerprint="f" * 64,
        artifact_uri="file:///store/sha256/ab/abc",
        artifact_sha256="b" * 64,
        metrics={"accuracy": 0.91},
        lock_hash="l" * 64,
        actor="dev",
        ci_url="https://ci/run/1",
        details={"reused_from": "churn-aaaaaaaaaaaa", "dirty": False},
    )
    event = Event(
        kind="train",
        model="churn",
        version=version,
        commit="c" * 40,
        actor="dev",
        ci_url="https://ci/run/1",
        details={"reused_from": "churn-aaaaaaaaaaaa"},
    )
    return record, event


def _raw(root: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / ".modelci/registry.db") as connection:
        return connection.execute(query).fetchall()


def test_a_quick_look_reads_what_the_registry_wrote(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    added = registry.add_version(_source())
    registry.add_version(
        dataclasses.replace(_source(), version="churn-bbbbbbbbbbbb", status="failed", details={})
    )

    look = quick_look(URL, tmp_path)
    assert look is not None
    try:
        assert look.version("churn-aaaaaaaaaaaa") == added
        assert look.version("churn-000000000000") is None
        assert look.version_status("churn-bbbbbbbbbbbb") == "failed"
        assert look.ready_with_fingerprint("churn", "f" * 64) == "churn-aaaaaaaaaaaa"
        assert look.ready_with_fingerprint("churn", "e" * 64) is None
    finally:
        look.close()


def test_a_quick_look_finds_each_models_deployed_commit_as_the_registry_does(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    old, new, other = "a" * 40, "b" * 40, "c" * 40
    for model, environment, commit in (
        ("churn", "staging", old),
        ("fraud", "staging", new),
        ("churn", "production", other),
        ("churn", "staging", None),  # no commit: not counted
    ):
        registry.append_event(
            Event(kind="deploy", model=model, environment=environment, commit=commit)
        )
    registry.append_event(Event(kind="rollback", model="churn", environment="staging", commit=new))
    look = quick_look(URL, tmp_path)
    assert look is not None
    try:
        for environment in ("staging", "production", "qa"):
            expected = registry.deployed_commits(environment)
            assert look.deployed_commits(environment) == expected, environment
        assert look.deployed_commits("staging") == {"churn": old, "fraud": new}
    finally:
        look.close()
        registry.close()


def test_a_reused_version_written_quickly_reads_back_through_the_registry(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path)
    source = registry.add_version(_source())
    record, event = _reuse()
    before = datetime.now(UTC)

    stored = add_reused_version(URL, tmp_path, record, event, source)

    assert stored is not None
    assert registry.get_version(record.version) == stored
    assert dataclasses.replace(stored, created_at=None, updated_at=None) == record
    assert stored.created_at is not None and before <= stored.created_at <= datetime.now(UTC)
    assert registry.list_versions("churn")[0].version == record.version  # newest first
    logged = registry.events("churn")[0]
    assert dataclasses.replace(logged, id=None, time=None) == event
    assert logged.time == stored.created_at
    # stored in the very text format SQLAlchemy uses, so time columns compare as one
    shapes = {
        re.sub(r"\d", "9", str(t))
        for (t,) in _raw(tmp_path, "SELECT created_at FROM versions UNION SELECT time FROM events")
    }
    assert shapes == {"9999-99-99 99:99:99.999999"}


def test_a_quick_write_declines_and_writes_nothing_when_in_doubt(tmp_path: Path) -> None:
    record, event = _reuse()
    assert add_reused_version(URL, tmp_path, record, event, _source()) is None  # no registry
    assert not (tmp_path / ".modelci/registry.db").exists()

    registry = _registry(tmp_path)
    source = registry.add_version(_source())
    other_artifact = dataclasses.replace(source, artifact_sha256="d" * 64)
    assert add_reused_version(URL, tmp_path, record, event, other_artifact) is None
    registry.add_version(dataclasses.replace(record, actor="first"))
    assert add_reused_version(URL, tmp_path, record, event, source) is None  # exists already
    registry.update_version(source.version, status="failed")
    second, second_event = _reuse("churn-dddddddddddd")
    assert add_reused_version(URL, tmp_path, second, second_event, source) is None

    kept = registry.get_version(record.version)
    assert kept is not None and kept.actor == "first"
    assert registry.get_version("churn-dddddddddddd") is None
    assert registry.events("churn") == []


def test_a_registry_at_another_schema_revision_is_left_to_the_registry(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    source = registry.add_version(_source())
    with sqlite3.connect(tmp_path / ".modelci/registry.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")

    record, event = _reuse()
    assert quick_look(URL, tmp_path) is None
    assert add_reused_version(URL, tmp_path, record, event, source) is None
    assert _raw(tmp_path, "SELECT count(*) FROM versions") == [(1,)]
    assert quick_look("postgresql://modelci@127.0.0.1/registry", tmp_path) is None
