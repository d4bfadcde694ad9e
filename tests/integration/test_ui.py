"""The dashboard in a real browser: `modelci ui` runs as its own process over the registry the
example pipeline made, and Debian's Chromium (driven by Playwright) opens each page, clicks
overview -> model -> version -> compare, and checks what it shows against the registry.
Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from modelci.registry import open_registry
from modelci.registry.base import Registry
from tests.support.dashboard import chromium, running_dashboard, screenshot
from tests.support.example_pipeline import REGISTRY, ExampleRepository

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dashboard(example_repository: ExampleRepository) -> Iterator[str]:
    with running_dashboard(example_repository.root, example_repository.environ) as url:
        yield url


@pytest.fixture
def registry(example_repository: ExampleRepository) -> Iterator[Registry]:
    with open_registry(REGISTRY, example_repository.root) as opened:
        yield opened


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as opened:
        yield opened


@pytest.fixture(scope="module")
def browser_page(browser: Any) -> Any:
    return browser.new_page(viewport={"width": 1400, "height": 1000})


def test_click_through_overview_model_version_compare(
    dashboard: str, browser_page: Any, registry: Registry, example_repository: ExampleRepository
) -> None:
    page = browser_page
    page.goto(dashboard + "/")
    rows = page.locator("tr.model")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.model)")) == registry.models()
    staging = registry.get_pointer("churn", "staging")
    production = registry.get_pointer("churn", "production")
    assert staging is not None and production is not None
    churn = page.locator('tr.model[data-model="churn"]')
    assert churn.locator('td[data-environment="staging"]').get_attribute("data-version") == (
        staging.version
    )
    assert churn.locator('td[data-environment="production"]').get_attribute("data-version") == (
        production.version
    )
    newest = registry.list_versions("churn")[0]
    assert churn.locator("td.newest").get_attribute("data-version") == newest.version
    screenshot(page, "overview")

    churn.locator("a.model-link").click()
    page.wait_for_url(f"{dashboard}/models/churn")
    assert page.locator("#model-name").inner_text() == "churn"
    versions = registry.list_versions("churn")
    shown = page.locator("tr.version-row").evaluate_all("rs => rs.map(r => r.dataset.version)")
    assert shown == [v.version for v in versions]  # newest first
    for metric in ("accuracy", "roc_auc"):
        chart = page.locator(f'svg.chart[data-metric="{metric}"]')
        points = chart.locator("circle.point")
        assert points.count() == len(versions)  # one point per version
        assert sorted(points.evaluate_all("ps => ps.map(p => p.dataset.version)")) == sorted(
            v.version for v in versions
        )
        values = points.evaluate_all("ps => ps.map(p => Number(p.dataset.value))")
        assert values == [v.metrics[metric] for v in reversed(versions)]  # oldest first
        marked = chart.locator("circle.mark").evaluate_all(
            "ms => ms.map(m => m.dataset.environment)"
        )
        assert sorted(marked) == ["production", "staging"]
    screenshot(page, "model")

    page.locator(f'tr.version-row[data-version="{newest.version}"] a.version').click()
    page.wait_for_url(f"{dashboard}/versions/{newest.version}")
    assert page.locator("#version-name").inner_text() == newest.version
    assert page.locator("#commit").inner_text() == newest.commit == example_repository.second
    assert page.locator("#fingerprint").inner_text() == newest.fingerprint
    assert page.locator("#lock-hash").inner_text() == newest.lock_hash
    assert page.locator("#artifact-sha256").inner_text() == newest.artifact_sha256
    for name, value in newest.metrics.items():
        cell = page.locator(f'#metrics tr[data-metric="{name}"] td.value')
        assert float(cell.inner_text()) == value
    assert "stronger regularisation" in page.locator("pre.message").inner_text()
    hyper = page.locator("#hyperparameters").inner_text()
    assert "C" in hyper and "0.5" in hyper and "max_iter" in hyper
    recorded = newest.details["tests"]["checks"]
    assert page.locator("tr.check").count() == len(recorded) > 0
    assert "accuracy=" in page.locator("#log-tail").inner_text()  # the training log's tail
    screenshot(page, "version")

    page.locator("a.compare-link", has_text=f"{production.version} (production now").click()
    page.wait_for_url(f"{dashboard}/compare?*")
    old = registry.get_version(production.version)
    assert old is not None
    for metric in ("accuracy", "roc_auc"):
        row = page.locator(f'#deltas tr[data-metric="{metric}"]')
        delta = float(row.locator("td.delta").get_attribute("data-delta") or "nan")
        assert delta == pytest.approx(newest.metrics[metric] - old.metrics[metric])
    changed = page.locator("#hyperparameters tr.changed").inner_text()
    assert "C" in changed and "1.0" in changed and "0.5" in changed
    screenshot(page, "compare")


def test_history_filters_and_what_served_at_a_time(
    dashboard: str, browser_page: Any, registry: Registry
) -> None:
    page = browser_page
    page.goto(dashboard + "/history")
    all_events = registry.events(limit=200)
    ids = page.locator("tr.event").evaluate_all("rs => rs.map(r => Number(r.dataset.id))")
    assert ids == [e.id for e in all_events]
    page.select_option('select[name="model"]', "churn")
    page.select_option('select[name="environment"]', "production")
    page.locator("#filters button").click()
    page.wait_for_url("**/history?*model=churn*")
    kept = registry.events("churn", environment="production")
    assert kept and page.locator("tr.event").count() == len(kept)
    screenshot(page, "history")

    # just before the second run's deploy to staging, staging served the first churn version
    deploys = registry.events("churn", kind="deploy", environment="staging")
    assert len(deploys) == 2
    latest = deploys[0]
    assert latest.time is not None and latest.from_version is not None
    before = datetime.fromtimestamp(latest.time.timestamp() - 0.001, latest.time.tzinfo)
    page.goto(f"{dashboard}/history?at={quote(before.isoformat())}")
    served = page.locator('#served tr[data-model="churn"][data-environment="staging"]')
    assert served.inner_text().split("\t")[-1].strip() == latest.from_version
    page.goto(f"{dashboard}/history?at={quote(latest.time.isoformat())}")
    assert served.inner_text().split("\t")[-1].strip() == latest.to_version
    screenshot(page, "served-at")


def test_bad_requests_get_a_page_naming_the_fault_and_the_server_lives_on(dashboard: str) -> None:
    cases = {
        "/models/no-such-model": (404, "no model named"),
        "/versions/churn-000000000000": (404, "no version named"),
        "/compare?a=churn-000000000000": (400, "compare needs two versions"),
        "/history?at=yesterday": (400, "at: &#39;yesterday&#39; is not an ISO 8601 time"),
        "/history?limit=-3": (400, "limit: must be between"),
        "/actions/rollback": (404, ""),  # actions are off by default: no such route
    }
    for path, (status, message) in cases.items():
        answer = httpx.request("POST" if "actions" in path else "GET", dashboard + path)
        assert answer.status_code == status, path
        assert message in answer.text, path
    assert httpx.get(dashboard + "/").status_code == 200


def test_the_dashboard_runs_outside_a_checkout_from_the_registry_url(
    example_repository: ExampleRepository, tmp_path: Path, registry: Registry
) -> None:
    database = example_repository.root / ".modelci" / "registry.db"
    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    environ = example_repository.environ | {"MODELCI_REGISTRY_URL": f"sqlite:///{database}"}
    with running_dashboard(elsewhere, environ) as url:
        overview = httpx.get(url + "/").text
        for model in registry.models():
            assert f'data-model="{model}"' in overview
        newest = registry.list_versions("price")[0]
        assert (
            newest.fingerprint
            and newest.fingerprint in httpx.get(f"{url}/versions/{newest.version}").text
        )


def test_outside_a_checkout_without_a_registry_url_is_exit_2(
    example_repository: ExampleRepository, tmp_path: Path
) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "modelci", "ui", "--port", "0"],
        cwd=tmp_path,
        env=example_repository.environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--registry" in done.stderr and "not inside a git repository" in done.stderr


@pytest.fixture
def acting_copy(example_repository: ExampleRepository, tmp_path: Path) -> Iterator[Path]:
    """A copy of the example repository to act on (its environments shared by a link);
    its endpoint host is stopped afterwards."""
    root = tmp_path / "copy"
    shutil.copytree(
        example_repository.root,
        root,
        symlinks=True,
        ignore=shutil.ignore_patterns("envs", "serve.json", "host.log", "__pycache__"),
    )
    (root / ".modelci" / "envs").symlink_to(
        example_repository.root / ".modelci" / "envs", target_is_directory=True
    )
    yield root
    ExampleRepository(root, example_repository.environ, "", "").modelci("serve", "--stop")


def test_actions_need_a_token_and_the_sessions_csrf_and_record_the_tokens_actor(
    acting_copy: Path, example_repository: ExampleRepository, tmp_path: Path, browser: Any
) -> None:
    tokens = tmp_path / "tokens"
    token = "t0ken-for-alice-0123456789"
    tokens.write_text(f"# who may act\nAlice Admin {token}\n")
    with (
        running_dashboard(
            acting_copy,
            example_repository.environ,
            "--allow-actions",
            "--tokens",
            str(tokens),
        ) as url,
        open_registry(REGISTRY, acting_copy) as registry,
    ):
        before = registry.get_pointer("churn", "staging")
        assert before is not None
        # no session: refused, nothing moves
        refused = httpx.post(
            url + "/actions/rollback", data={"model": "churn", "environment": "staging"}
        )
        assert refused.status_code == 403 and "sign in" in refused.text
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.goto(url + "/models/churn")
            assert page.locator("button.rollback").count() == 0  # signed out: no buttons
            page.fill('#login input[name="token"]', "wrong-token-0123456789")
            page.locator("#login button").click()
            assert "unknown token" in page.locator("#error").inner_text()
            page.goto(url + "/models/churn")
            page.fill('#login input[name="token"]', token)
            page.locator("#login button").click()
            page.wait_for_url(url + "/models/churn")
            assert page.locator("#actor").inner_text() == "Alice Admin"
            # a forged form without the session's CSRF token is refused
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            with httpx.Client(cookies=cookies) as client:
                forged = client.post(
                    url + "/actions/rollback",
                    data={"model": "churn", "environment": "staging", "csrf": "guess"},
                )
            assert forged.status_code == 403 and "CSRF" in forged.text
            current = registry.get_pointer("churn", "staging")
            assert current is not None and current.generation == before.generation
            # the health-checked deploy behind the button starts the endpoint host: the post's
            # answer may take minutes on a loaded machine
            page.set_default_timeout(300_000)
            page.locator('tr[data-environment="staging"] button.rollback').click()
            page.wait_for_selector("#outcome")
            assert "deployed" in page.locator("#outcome").inner_text()
            screenshot(page, "rollback")
        finally:
            context.close()
        after = registry.get_pointer("churn", "staging")
        assert after is not None and after.version != before.version
        assert after.actor == "Alice Admin"
        event = registry.events("churn", kind="rollback", limit=1)[0]
        assert event.actor == "Alice Admin" and event.to_version == after.version


@pytest.mark.postgres
def test_the_dashboard_reads_a_postgresql_registry(
    postgres_url: str, tmp_path: Path, example_repository: ExampleRepository
) -> None:
    from modelci.registry import Event, VersionRecord
    from tests.support.postgres import create_database

    url = create_database(postgres_url, "dashboard")
    with open_registry(url, tmp_path) as registry:
        for index in range(3):
            commit = str(index) * 40
            version = f"churn-{commit[:12]}"
            metrics = {"accuracy": 0.8 + index / 100}
            registry.add_version(VersionRecord(version, "churn", commit, "ready", metrics=metrics))
            pointer = registry.get_pointer("churn", "staging")
            registry.set_pointer(
                "churn",
                "staging",
                version,
                expected_generation=pointer.generation if pointer else None,
                event=Event(kind="deploy", model="churn", actor="ci"),
            )
    environ = example_repository.environ | {"MODELCI_REGISTRY_URL": url}
    with running_dashboard(tmp_path, environ) as dashboard_url:
        overview = httpx.get(dashboard_url + "/").text
        assert 'data-environment="staging" data-version="churn-222222222222"' in overview
        model = httpx.get(dashboard_url + "/models/churn").text
        assert model.count('class="point"') == 3
