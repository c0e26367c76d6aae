"""Fixtures of the browser tests: one real stack per module, one Chromium per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, Tab, new_tab
from playwright.sync_api import Browser, sync_playwright
from stack import Stack, make_stack

from edge.redisserver import RedisServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Control plane + runtime (gunicorn), real Redis, SQLite: one per module."""
    tmp = Path(tmp_path_factory.mktemp("browser-stack"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    stack = make_stack(tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url)
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()
        redis.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/ensure-system-packages.sh installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def tab(browser: Browser, stack: Stack, tmp_path: Path) -> Iterator[Tab]:
    """A fresh browser context (no cookies); fails the test on any console error."""
    tab = new_tab(browser, stack, tmp_path, viewport={"width": 1280, "height": 900})
    yield tab
    tab.context.close()
    assert tab.errors == [], f"console errors: {tab.errors}"
