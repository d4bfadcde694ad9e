"""The dashboard (`modelci ui`) as a real process on a free port of 127.0.0.1, and Chromium
driven by Playwright (Debian's /usr/bin/chromium: Playwright's own browser download is never
used)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
READY_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/static/style.css", timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_dashboard(cwd: Path, environ: dict[str, str], *arguments: str) -> Iterator[str]:
    """`modelci ui ARGUMENTS` started in `cwd`; yields its URL, stops it with SIGTERM and checks
    that it never printed a traceback."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "modelci", "ui", "--port", str(port), *arguments],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _answers(url),
            f"the dashboard at {url} answers",
            deadline_s=READY_DEADLINE_S,
            process=process,
        )
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _, stderr = process.communicate()
        assert "Traceback" not in stderr, stderr


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser): one per module, since Playwright's sync API
    runs one at a time; skipped without /usr/bin/chromium, except in CI (`CI` set):
    there it fails (`scripts/ensure-chromium` installs it)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: run scripts/ensure-chromium"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as test-artifacts/ui/NAME.png (kept for CI to collect)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
