"""The registry on SQLite and on a real PostgreSQL server: versions, compare-and-set pointers,
the event log, migrations, URL handling, and processes racing on one pointer."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelci.errors import ConfigError, PointerConflict, RegistryError
from modelci.registry import Event, Registry, VersionRecord, open_registry
from modelci.registry.base import PendingDeploy
from modelci.registry.migrations import HEAD
from tests.support import race
from tests.support.ports import free_port
from tests.support.postgres import (
    PostgresUnavailable,
    create_database,
    find_postgres_bin,
    unavailable,
)
from tests.support.waiting import wait_until

SHA = "0123456789abcdef0123456789abcdef01234567"


def record(version: str, **fields: Any) -> VersionRecord:
    """A version of the model its name starts with."""
    model = version.rsplit("-", 1)[0]
    return VersionRecord(version=version, model=model, commit=fields.pop("commit", SHA), **fields)


def deploy(model: str, **fields: Any) -> Event:
    return Event(kind="deploy", model=model, **fields)


# -- versions ---------------------------------------------------------------------------------


def test_add_version_keeps_every_field(registry: Registry) -> None:
    before = datetime.now(UTC)
    full = VersionRecord(
        version="churn-0123456789ab",
        model="churn",
        commit=SHA,
        status="ready",
        fingerprint="f" * 64,
        artifact_uri="file:///artifacts/ab/cd",
        artifact_sha256="a" * 64,
        metrics={"accuracy": 0.91, "f1": 0.5},
        lock_hash="l" * 64,
        actor="ci-bot",
        ci_url="https://ci.example.com/run/7",
        details={"reused": False, "log": ["a", "b"]},
    )

    added = registry.add_version(full)
    fetched = registry.get_version("churn-0123456789ab")

    assert fetched == added
    assert dataclasses.replace(added, created_at=None, updated_at=None) == full
    assert added.created_at is not None and added.created_at.tzinfo == UTC
    assert before <= added.created_at <= datetime.now(UTC)
    assert added.updated_at == added.created_at
    assert registry.models() == ["churn"]
    assert registry.get_version("churn-ffffffffffff") is None


def test_adding_an_existing_version_is_a_config_error(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001", actor="first"))

    with pytest.raises(ConfigError, match="churn-000000000001 is already in the registry"):
        registry.add_version(record("churn-000000000001", actor="second"))

    kept = registry.get_version("churn-000000000001")
    assert kept is not None and kept.actor == "first"
    assert len(registry.list_versions()) == 1


def test_unknown_status_is_refused(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="'done' is not one of training, ready, failed"):
        registry.add_version(record("churn-000000000001", status="done"))
    assert registry.list_versions() == []


def test_update_version_changes_only_the_given_fields(registry: Registry) -> None:
    added = registry.add_version(record("churn-000000000001", metrics={"old": 1.0}, actor="ci"))

    updated = registry.update_version(
        "churn-000000000001",
        status="ready",
        artifact_uri="file:///a",
        artifact_sha256="b" * 64,
        metrics={"accuracy": 0.9},
    )

    assert updated == registry.get_version("churn-000000000001")
    assert updated.status == "ready"
    assert updated.artifact_uri == "file:///a"
    assert updated.artifact_sha256 == "b" * 64
    assert updated.metrics == {"accuracy": 0.9}  # replaced, not merged
    assert updated.actor == "ci"
    assert updated.created_at == added.created_at
    assert added.updated_at is not None and updated.updated_at is not None
    assert updated.updated_at > added.updated_at


def test_update_version_refuses_what_it_cannot_do(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001"))

    with pytest.raises(ConfigError, match="no version churn-000000000009"):
        registry.update_version("churn-000000000009", status="ready")
    with pytest.raises(ConfigError, match="'done' is not one of"):
        registry.update_version("churn-000000000001", status="done")
    with pytest.raises(TypeError, match="cannot change model"):
        registry.update_version("churn-000000000001", model="other")

    unchanged = registry.get_version("churn-000000000001")
    assert unchanged is not None and unchanged.status == "training"
    assert unchanged.model == "churn"


def test_a_nan_metric_is_refused_alike_on_every_backend(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="metrics must be plain JSON: Out of range float"):
        registry.add_version(record("churn-000000000001", metrics={"accuracy": float("nan")}))
    assert registry.get_version("churn-000000000001") is None


def test_list_versions_newest_first(registry: Registry) -> None:
    for name in ["churn-000000000001", "fraud-000000000001", "churn-000000000002"]:
        registry.add_version(record(name))

    assert [v.version for v in registry.list_versions()] == [
        "churn-000000000002",
        "fraud-000000000001",
        "churn-000000000001",
    ]
    assert [v.version for v in registry.list_versions("churn")] == [
        "churn-000000000002",
        "churn-000000000001",
    ]
    assert registry.list_versions("nobody") == []
    assert registry.models() == ["churn", "fraud"]


def test_find_by_fingerprint_finds_the_newest_ready_version(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001", fingerprint="fp", status="ready"))
    registry.add_version(record("churn-000000000002", fingerprint="fp", status="ready"))
    registry.add_version(record("churn-000000000003", fingerprint="fp", status="failed"))
    registry.add_version(record("churn-000000000004", fingerprint="fp", status="training"))
    registry.add_version(record("churn-000000000005", fingerprint="other", status="ready"))
    registry.add_version(record("fraud-000000000006", fingerprint="fp", status="ready"))

    found = registry.find_by_fingerprint("churn", "fp")

    assert found is not None and found.version == "churn-000000000002"
    assert registry.find_by_fingerprint("churn", "unknown") is None
    assert registry.find_by_fingerprint("nobody", "fp") is None


# -- pointers ---------------------------------------------------------------------------------


def test_set_pointer_creates_then_compares_and_sets(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001"))
    registry.add_version(record("churn-000000000002"))
    assert registry.get_pointer("churn", "staging") is None

    first = registry.set_pointer(
        "churn",
        "staging",
        "churn-000000000001",
        expected_generation=None,
        event=deploy("churn", actor="ci-1"),
    )
    second = registry.set_pointer(
        "churn",
        "staging",
        "churn-000000000002",
        expected_generation=1,
        event=deploy("churn", actor="ci-2"),
    )

    assert (first.version, first.generation, first.actor) == ("churn-000000000001", 1, "ci-1")
    assert (second.version, second.generation, second.actor) == ("churn-000000000002", 2, "ci-2")
    assert second.updated_at.tzinfo == UTC and second.updated_at >= first.updated_at
    assert registry.get_pointer("churn", "staging") == second
    assert registry.pointers() == [second]
    assert registry.pointers("fraud") == []
    changes = [(e.from_version, e.to_version, e.environment) for e in registry.events("churn")]
    assert changes == [
        ("churn-000000000001", "churn-000000000002", "staging"),
        (None, "churn-000000000001", "staging"),
    ]


def test_pointers_of_several_environments_and_models(registry: Registry) -> None:
    for name in ["churn-000000000001", "fraud-000000000001"]:
        registry.add_version(record(name))
    for model, environment in [("fraud", "staging"), ("churn", "staging"), ("churn", "prod")]:
        registry.set_pointer(
            model,
            environment,
            f"{model}-000000000001",
            expected_generation=None,
            event=deploy(model),
        )

    assert [(p.model, p.environment) for p in registry.pointers()] == [
        ("churn", "prod"),
        ("churn", "staging"),
        ("fraud", "staging"),
    ]
    assert [p.environment for p in registry.pointers("churn")] == ["prod", "staging"]


@pytest.mark.parametrize(
    ("existing", "expected", "message"),
    [
        (2, 1, "expected generation 1, found generation 2 (churn-000000000002, set by winner)"),
        (1, None, "expected no pointer yet, found generation 1 (churn-000000000001"),
        (0, 3, "expected generation 3, found no pointer"),
    ],
    ids=["stale-generation", "already-exists", "never-set"],
)
def test_a_conflict_changes_nothing_and_logs_nothing(
    registry: Registry, existing: int, expected: int | None, message: str
) -> None:
    for name in ["churn-000000000001", "churn-000000000002", "churn-000000000003"]:
        registry.add_version(record(name))
    for generation in range(1, existing + 1):
        registry.set_pointer(
            "churn",
            "staging",
            f"churn-00000000000{generation}",
            expected_generation=generation - 1 or None,
            event=deploy("churn", actor="winner"),
        )
    pointer_before = registry.get_pointer("churn", "staging")
    events_before = registry.events()

    with pytest.raises(PointerConflict) as conflict:
        registry.set_pointer(
            "churn",
            "staging",
            "churn-000000000003",
            expected_generation=expected,
            event=deploy("churn", actor="loser"),
        )

    assert "staging pointer of churn was changed by another writer" in str(conflict.value)
    assert message in str(conflict.value)
    assert conflict.value.exit_code == 1
    assert registry.get_pointer("churn", "staging") == pointer_before
    assert registry.events() == events_before


def test_two_registries_inserting_one_pointer_one_wins(registry_url: str, repo_root: Path) -> None:
    with (
        open_registry(registry_url, repo_root) as first,
        open_registry(registry_url, repo_root) as second,
    ):
        first.add_version(record("churn-000000000001"))
        first.add_version(record("churn-000000000002"))
        # Both read "no pointer" before either writes.
        assert first.get_pointer("churn", "staging") is None
        assert second.get_pointer("churn", "staging") is None

        won = first.set_pointer(
            "churn",
            "staging",
            "churn-000000000001",
            expected_generation=None,
            event=deploy("churn", actor="first"),
        )
        with pytest.raises(PointerConflict, match="expected no pointer yet, found generation 1"):
            second.set_pointer(
                "churn",
                "staging",
                "churn-000000000002",
                expected_generation=None,
                event=deploy("churn", actor="second"),
            )

        assert second.get_pointer("churn", "staging") == won
        assert [e.actor for e in second.events()] == ["first"]


def test_a_pointer_must_point_at_a_version_of_its_model(registry: Registry) -> None:
    registry.add_version(record("fraud-000000000001"))

    with pytest.raises(ConfigError, match="no version churn-000000000001 in the registry"):
        registry.set_pointer(
            "churn",
            "staging",
            "churn-000000000001",
            expected_generation=None,
            event=deploy("churn"),
        )
    with pytest.raises(ConfigError, match="belongs to model fraud, not churn"):
        registry.set_pointer(
            "churn",
            "staging",
            "fraud-000000000001",
            expected_generation=None,
            event=deploy("churn"),
        )

    assert registry.pointers() == []
    assert registry.events() == []


@pytest.mark.postgres
@pytest.mark.parametrize("existing", [0, 1], ids=["insert", "update"])
def test_postgres_writer_waits_for_the_other_transaction_then_conflicts(
    postgres_url: str, repo_root: Path, existing: int
) -> None:
    """The path only PostgreSQL takes: our read sees the old pointer, our write then waits on
    the other writer's lock, and after its commit matches nothing."""
    import psycopg

    url = create_database(postgres_url, f"waits_{existing}")
    with open_registry(url, repo_root) as registry:
        registry.add_version(record("churn-000000000001"))
        registry.add_version(record("churn-000000000002"))
        if existing:
            registry.set_pointer(
                "churn",
                "staging",
                "churn-000000000001",
                expected_generation=None,
                event=deploy("churn"),
            )
        outcome: dict[str, BaseException | None] = {}

        def attempt() -> None:
            try:
                registry.set_pointer(
                    "churn",
                    "staging",
                    "churn-000000000002",
                    expected_generation=existing or None,
                    event=deploy("churn", actor="loser"),
                )
                outcome["error"] = None
            except BaseException as error:
                outcome["error"] = error

        with psycopg.connect(url) as other, psycopg.connect(url, autocommit=True) as observer:
            if existing:
                other.execute("UPDATE pointers SET generation = 2, actor = 'winner'")
            else:
                other.execute(
                    "INSERT INTO pointers (model, environment, version, generation, updated_at,"
                    " actor) VALUES ('churn', 'staging', 'churn-000000000001', 1, now(),"
                    " 'winner')"
                )
            thread = threading.Thread(target=attempt)
            thread.start()
            wait_until(
                lambda: (
                    observer.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'modelci'"
                        " AND wait_event_type = 'Lock' AND datname = current_database()"
                    ).fetchone()
                    == (1,)
                ),
                "the registry's write to wait on the other transaction's lock",
                pause_s=0.01,
            )
            other.commit()
            thread.join(timeout=60)

        error = outcome["error"]
        assert isinstance(error, PointerConflict)
        assert f"found generation {existing + 1} (churn-000000000001, set by winner)" in str(error)
        assert [e.actor for e in registry.events()] == ([None] if existing else [])
        pointer = registry.get_pointer("churn", "staging")
        assert pointer is not None and pointer.generation == existing + 1


def test_processes_racing_on_one_pointer_lose_no_update(
    registry: Registry, registry_url: str, repo_root: Path
) -> None:
    processes, updates = 4, 50
    race.prepare(registry, processes)

    outcome = race.run_race(registry_url, repo_root, processes=processes, updates=updates)

    total = processes * updates
    assert [w.successes for w in outcome.workers] == [updates] * processes
    pointer = registry.get_pointer(race.MODEL, race.ENVIRONMENT)
    assert pointer is not None and pointer.generation == total == outcome.successes
    logged = registry.events(race.MODEL, kind=race.EVENT_KIND)
    assert len(logged) == total
    # Each success is logged once, and each generation was the base of exactly one success.
    assert {(e.details["worker"], e.details["seq"]) for e in logged} == {
        (w, s) for w in range(processes) for s in range(updates)
    }
    by_base = sorted(logged, key=lambda e: e.details["expected"] or 0)
    assert [e.details["expected"] or 0 for e in by_base] == list(range(total))
    # The log chains: every change starts where the previous one ended.
    assert by_base[0].from_version is None
    for previous, following in itertools.pairwise(by_base):
        assert following.from_version == previous.to_version
    assert by_base[-1].to_version == pointer.version


# -- events -----------------------------------------------------------------------------------


def test_events_are_appended_and_read_newest_first(registry: Registry) -> None:
    before = datetime.now(UTC)
    train = registry.append_event(
        Event(
            kind="train",
            model="churn",
            version="churn-000000000001",
            commit=SHA,
            actor="ci",
            ci_url="https://ci.example.com/1",
            details={"seconds": 3.5},
        )
    )
    gate = registry.append_event(
        Event(
            kind="gate-failure",
            model="churn",
            version="churn-000000000001",
            details={"gate": "accuracy"},
        )
    )
    promote = registry.append_event(
        Event(
            kind="promote",
            model="fraud",
            version="fraud-000000000001",
            environment="production",
            from_version="fraud-000000000000",
            to_version="fraud-000000000001",
            tag="v1.4.0",
        )
    )

    assert train.id is not None and gate.id is not None and promote.id is not None
    assert train.id < gate.id < promote.id
    assert train.time is not None and train.time.tzinfo == UTC
    assert before <= train.time <= datetime.now(UTC)
    assert registry.events() == [promote, gate, train]
    assert registry.events("churn") == [gate, train]
    assert registry.events(kind="train") == [train]
    assert registry.events("churn", kind="promote") == []
    assert registry.events(limit=2) == [promote, gate]
    assert registry.events()[0].tag == "v1.4.0"
    assert registry.events("churn")[1].details == {"seconds": 3.5}


def test_last_deployed_commit_is_the_newest_deploy_to_that_environment(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry.last_deployed_commit("staging") is None
    old, new, other = "a" * 40, "b" * 40, "c" * 40
    registry.append_event(deploy("churn", environment="staging", commit=old))
    registry.append_event(deploy("fraud", environment="staging", commit=new))
    registry.append_event(deploy("churn", environment="production", commit=other))
    registry.append_event(deploy("churn", environment="staging"))  # no commit: not counted
    registry.append_event(Event(kind="train", model="churn", commit=other))
    registry.append_event(
        Event(kind="rollback", model="churn", environment="staging", commit=other)
    )

    # one query, not a scan of the log: reading events would fail
    monkeypatch.setattr(type(registry), "events", None)
    assert registry.last_deployed_commit("staging") == new
    assert registry.last_deployed_commit("staging", "churn") == old
    assert registry.last_deployed_commit("production") == other
    assert registry.last_deployed_commit("production", "fraud") is None
    # each model's own, in one grouped query
    monkeypatch.setattr(type(registry), "last_deployed_commit", None)
    assert registry.deployed_commits("staging") == {"churn": old, "fraud": new}
    assert registry.deployed_commits("production") == {"churn": other}
    assert registry.deployed_commits("qa") == {}


def test_the_event_of_a_pointer_change_keeps_the_callers_fields(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001"))

    registry.set_pointer(
        "churn",
        "production",
        "churn-000000000001",
        expected_generation=None,
        event=Event(
            kind="promote",
            model="ignored",
            commit=SHA,
            tag="v2.0.0",
            actor="release-bot",
            ci_url="https://ci.example.com/9",
            details={"reason": "tag"},
        ),
    )

    (logged,) = registry.events()
    assert logged.kind == "promote"
    assert (logged.model, logged.environment, logged.version) == (
        "churn",
        "production",
        "churn-000000000001",
    )
    assert (logged.from_version, logged.to_version) == (None, "churn-000000000001")
    assert (logged.commit, logged.tag, logged.actor) == (SHA, "v2.0.0", "release-bot")
    assert logged.ci_url == "https://ci.example.com/9"
    assert logged.details == {"reason": "tag"}


# -- schema and migrations --------------------------------------------------------------------


def test_upgrade_is_idempotent(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001"))

    assert registry.upgrade() == HEAD
    assert registry.upgrade() == HEAD
    assert [v.version for v in registry.list_versions()] == ["churn-000000000001"]


def test_a_current_schema_is_checked_without_loading_alembic(
    registry: Registry, registry_url: str, repo_root: Path
) -> None:
    registry.upgrade()
    probe = (
        "import sys; from pathlib import Path; from modelci.registry import open_registry\n"
        f"with open_registry({registry_url!r}, Path({str(repo_root)!r})) as registry:\n"
        "    assert registry.get_version('churn-000000000001') is None\n"
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_processes_using_a_new_registry_at_once_all_find_it_migrated(
    registry_url: str, repo_root: Path
) -> None:
    # Each migrates under the database's write lock (SQLite) or an advisory lock (PostgreSQL);
    # the later ones find the schema at head.
    probe = (
        "from pathlib import Path; from modelci.registry import open_registry\n"
        f"with open_registry({registry_url!r}, Path({str(repo_root)!r})) as registry:\n"
        "    print(registry.models(), registry.upgrade())"
    )
    started = [
        subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0].strip() for process in started]

    assert [process.returncode for process in started] == [0] * 4
    assert outputs == [f"[] {HEAD}"] * 4


def test_head_names_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import modelci.registry.migrations as migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


def test_migrations_create_exactly_the_declared_tables(registry: Registry) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from modelci.registry.sql import SqlRegistry
    from modelci.registry.tables import metadata

    assert isinstance(registry, SqlRegistry)
    registry.upgrade()
    with registry._engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_first_use_migrates_a_new_sqlite_file(tmp_path: Path) -> None:
    with open_registry("sqlite:///state/registry.db", tmp_path) as registry:
        assert (tmp_path / "state").is_dir()  # the folder exists once the registry is open
        assert registry.get_version("churn-000000000001") is None
        assert (tmp_path / "state" / "registry.db").is_file()
    with open_registry(f"sqlite:///{tmp_path}/state/registry.db", Path("/nonexistent")) as again:
        assert again.upgrade() == HEAD


def test_a_schema_newer_than_this_modelci_is_refused(registry_url: str, repo_root: Path) -> None:
    from sqlalchemy import text

    from modelci.registry.sql import SqlRegistry

    with open_registry(registry_url, repo_root) as registry:
        assert isinstance(registry, SqlRegistry)
        registry.upgrade()
        with registry._engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with (
        open_registry(registry_url, repo_root) as newer,
        pytest.raises(RegistryError, match="has a schema this modelci does not know") as refused,
    ):
        newer.models()
    assert "9999" in str(refused.value)


# -- URLs -------------------------------------------------------------------------------------


def test_an_unknown_scheme_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        open_registry("mysql://admin:hunter2@db.example.com/registry", tmp_path)

    assert refused.value.key == "registry.url"
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert message.startswith("registry.url: unknown registry URL")
    assert "mysql://admin:***@db.example.com/registry" in message
    assert "hunter2" not in message
    for scheme in ["sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://"]:
        assert scheme in message


def test_a_url_without_scheme_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown registry URL '\.modelci/registry\.db'"):
        open_registry(".modelci/registry.db", tmp_path)


@pytest.mark.parametrize(
    "url", ["postgresql://u:p@db/x", "postgres://u:p@db/x", "postgresql+psycopg://u:p@db/x"]
)
def test_postgresql_urls_use_psycopg_3(url: str, tmp_path: Path) -> None:
    from modelci.registry.sql import SqlRegistry

    registry = open_registry(url, tmp_path)  # opening connects to nothing yet
    try:
        assert isinstance(registry, SqlRegistry)
        assert registry.url.drivername == "postgresql+psycopg"
        assert registry.display_url == "postgresql+psycopg://u:***@db/x"
    finally:
        registry.close()


def test_an_unreachable_postgresql_is_a_registry_error_without_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://modelci:s3cret-pw@127.0.0.1:{free_port()}/registry"

    with open_registry(url, tmp_path) as registry, pytest.raises(RegistryError) as failed:
        registry.models()

    message = str(failed.value)
    assert message.startswith("cannot open the registry at postgresql+psycopg://modelci:***@")
    assert "Connection refused" in message or "connection failed" in message
    assert "s3cret-pw" not in message
    assert failed.value.exit_code == 1


def test_importing_the_registry_does_not_import_sqlalchemy() -> None:
    probe = "import sys, modelci.registry; print(sorted(m for m in sys.modules if 'sqlalchemy' in m or m == 'alembic'))"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- the PostgreSQL fixture itself ------------------------------------------------------------


def test_missing_postgres_binaries_are_named(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match="initdb, pg_ctl"):
        find_postgres_bin(search=[str(tmp_path / "*")], path=str(tmp_path))


def test_without_postgres_a_test_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is required in CI: gone"):
        unavailable("gone")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="gone"):
        unavailable("gone")


def test_a_pointer_carries_its_deploys_intent_until_settled(registry: Registry) -> None:
    registry.add_version(record("churn-000000000001"))
    registry.add_version(record("churn-000000000002"))
    first = registry.set_pointer(
        "churn", "staging", "churn-000000000001", expected_generation=None, event=deploy("churn")
    )
    assert first.pending is None and registry.get_pointer("churn", "staging") == first
    intent = PendingDeploy(
        previous="churn-000000000001", kind="deploy", owner={"host": "h", "pid": 7}, expires=9.5
    )
    moved = registry.set_pointer(
        "churn",
        "staging",
        "churn-000000000002",
        expected_generation=1,
        event=deploy("churn"),
        pending=intent,
    )
    assert moved.pending == intent and registry.get_pointer("churn", "staging") == moved

    done = Event(kind="deploy_completed", model="churn", version="churn-000000000002")
    assert not registry.settle_pointer("churn", "staging", expected_generation=1, event=done)
    assert registry.get_pointer("churn", "staging") == moved  # another generation: untouched
    assert registry.settle_pointer("churn", "staging", expected_generation=2, event=done)
    settled = registry.get_pointer("churn", "staging")
    assert settled is not None and settled.pending is None and settled.generation == 2
    assert not registry.settle_pointer("churn", "staging", expected_generation=2, event=done)
    assert [e.kind for e in registry.events("churn")] == ["deploy_completed", "deploy", "deploy"]


def test_a_put_back_writes_its_failure_and_its_rollback_together_or_not_at_all(
    registry: Registry,
) -> None:
    registry.add_version(record("churn-000000000001"))
    registry.add_version(record("churn-000000000002"))
    registry.set_pointer(
        "churn", "staging", "churn-000000000001", expected_generation=None, event=deploy("churn")
    )
    failed = Event(kind="deploy_failed", model="churn", to_version="churn-000000000001")
    back = Event(kind="rollback", model="churn")

    with pytest.raises(PointerConflict):
        registry.clear_pointer("churn", "staging", expected_generation=5, event=back, first=failed)
    with pytest.raises(PointerConflict):
        registry.set_pointer(
            "churn",
            "staging",
            "churn-000000000002",
            expected_generation=5,
            event=back,
            first=failed,
        )
    assert [e.kind for e in registry.events("churn")] == ["deploy"]

    registry.clear_pointer("churn", "staging", expected_generation=1, event=back, first=failed)
    assert registry.get_pointer("churn", "staging") is None
    newest = registry.events("churn")
    assert [e.kind for e in newest] == ["rollback", "deploy_failed", "deploy"]
    assert newest[0].id is not None and newest[1].id is not None and newest[0].id > newest[1].id
