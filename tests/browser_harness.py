"""Headless Chromium (Debian's package) driven by Playwright, for the browser tests.

Playwright's own browser download is not used: the Debian binary is launched by
path. Every page a test opens records console errors and uncaught exceptions;
the test fails if there was any. Each test saves a screenshot: into its temporary
folder, and into ``docs/screenshots/`` when ``EDGE_SAVE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page
from stack import ROOT, Stack

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Tab:
    """One browser page of a test, with what its console said."""

    page: Page
    context: BrowserContext
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def screenshot(self, name: str) -> None:
        target = self.shots / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=True)
        if os.environ.get("EDGE_SAVE_SCREENSHOTS") == "1":
            docs = ROOT / "docs" / "screenshots"
            docs.mkdir(parents=True, exist_ok=True)
            shutil.copy(target, docs / target.name)


def new_tab(browser: Browser, stack: Stack, shots: Path, **options: object) -> Tab:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    page = context.new_page()
    tab = Tab(page, context, f"http://127.0.0.1:{stack.config.platform_port}", shots)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    return tab
