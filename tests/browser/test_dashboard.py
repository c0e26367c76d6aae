"""The dashboard in a real headless Chromium, against a real platform and runtime.

Apps are deployed by real git pushes; the browser signs in with real tokens,
rolls back, tails logs and reads charts the way a person would.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from browser_harness import Tab, new_tab
from playwright.sync_api import Browser, Page, expect
from stack import Stack, Workdir, wait_for

from edge.platform.store import Store

MANIFEST = '[functions.hello]\nentry = "hello.py"\nroutes = ["/hello"]\n'


def hello(version: str) -> dict[str, str]:
    return {
        "edge.toml": MANIFEST,
        "hello.py": "def handle(request):\n"
        "    print('hello-line', request.query.get('tag', ''))\n"
        f"    return {version!r}\n",
    }


class Apps:
    """Two apps pushed by git: ``main`` (v1, v2, a feature-x preview) and ``other``."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.main, self.other = f"shop-{suffix}", f"other-{suffix}"
        self.work = Workdir(tmp / self.main)
        self.work.commit("First version", hello("v1"))
        assert "v1 live" in self.work.push(stack.remote(self.main)).stderr
        self.work.commit("Second version", hello("v2"))
        assert "v2 live" in self.work.push(stack.remote(self.main)).stderr
        self.work.git("checkout", "-q", "-b", "feature-x")
        self.work.commit("Try something", hello("preview"))
        assert "live at" in self.work.push(stack.remote(self.main), "feature-x").stderr
        self.work.git("checkout", "-q", "main")
        self.other_work = Workdir(tmp / self.other)
        self.other_work.commit("Other app", hello("other"))
        assert "v1 live" in self.other_work.push(stack.remote(self.other)).stderr


@pytest.fixture(scope="module")
def apps(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Apps:
    return Apps(stack, Path(tmp_path_factory.mktemp("apps")))


def new_token(stack: Stack, **scope: object) -> str:
    store = Store.from_url(stack.config.database_url)
    try:
        return store.create_token("browser-user", **scope)  # type: ignore[arg-type]
    finally:
        store.close()


def sign_in(tab: Tab, token: str) -> Page:
    """Sign in from the keyboard alone: the token field has focus, Enter submits."""
    page = tab.open("/")
    expect(page).to_have_url(f"{tab.base}/login?next=%2F")
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Apps")
    return page


def answer(stack: Stack, app: str, path: str = "/hello") -> str:
    return stack.get(stack.host(app), path).text


def test_admin_sees_every_app_with_its_preview(tab: Tab, stack: Stack, apps: Apps) -> None:
    page = sign_in(tab, stack.token)
    row = page.locator(f'tr[data-app="{apps.main}"]')
    expect(row.get_by_role("link", name="v2")).to_be_visible()
    preview = row.locator("a.preview")
    expect(preview).to_have_text("feature-x")
    expect(preview).to_have_attribute(
        "href", f"http://feature-x--{apps.main}.edge.localhost:{stack.config.runtime_port}/"
    )
    expect(row).to_contain_text("Test Pusher")
    expect(page.locator(f'tr[data-app="{apps.other}"]')).to_be_visible()
    tab.screenshot("admin")


def test_an_app_token_sees_only_its_app(tab: Tab, stack: Stack, apps: Apps) -> None:
    page = sign_in(tab, new_token(stack, apps=[apps.main]))
    expect(page.locator(f'tr[data-app="{apps.main}"]')).to_be_visible()
    expect(page.locator(f'tr[data-app="{apps.other}"]')).to_have_count(0)
    response = tab.context.request.get(f"{tab.base}/apps/{apps.other}")
    assert response.status == 403
    tab.screenshot("app-token")


def test_rollback_from_the_releases_table_changes_the_answer(
    tab: Tab, stack: Stack, apps: Apps
) -> None:
    assert answer(stack, apps.main) == "v2"
    page = sign_in(tab, stack.token)
    page.get_by_role("link", name=apps.main, exact=True).click()
    releases = page.locator("table.releases")
    expect(releases.locator('tr[data-version="2"] button.rollback')).to_have_count(0)  # serving
    releases.get_by_role("button", name="Roll back to v1").click()
    expect(page.locator("h1")).to_have_text(f"Roll back {apps.main} to v1?")
    confirm = page.get_by_role("button", name="Yes, roll back to v1")
    confirm.focus()  # from the keyboard
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_contain_text("serves the code of v1")
    assert answer(stack, apps.main) == "v1"
    expect(releases.locator('tr[data-version="3"]')).to_contain_text("Rollback to v1")
    tab.screenshot("rollback")


def test_a_printed_line_appears_in_the_live_log_within_2_s(
    tab: Tab, stack: Stack, apps: Apps
) -> None:
    page = sign_in(tab, stack.token)
    tab.open(f"/apps/{apps.main}/logs")
    expect(page.locator("#live-state")).to_contain_text("Live")
    expect(page.locator("#log li.kind-platform").first).to_be_visible()  # deploy events
    tag = uuid.uuid4().hex[:10]
    assert stack.get(stack.host(apps.main), f"/hello?tag={tag}").status_code == 200
    start = time.monotonic()
    expect(page.locator("#log li", has_text=tag)).to_be_visible(timeout=2000)
    assert time.monotonic() - start < 2.0
    tab.screenshot("logs")

    page.get_by_role("button", name="Pause").click()
    held = uuid.uuid4().hex[:10]
    stack.get(stack.host(apps.main), f"/hello?tag={held}")
    expect(page.locator("#live-state")).to_contain_text("1 new line(s) held", timeout=5000)
    expect(page.locator("#log li", has_text=held)).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#log li", has_text=held)).to_be_visible()

    page.get_by_label("Function").select_option("hello")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{tab.base}/apps/{apps.main}/logs?function=hello")
    expect(page.locator("#log li .fn", has_text="[platform]")).to_have_count(0)
    expect(page.locator("#log li", has_text=held)).to_be_visible()
    tab.screenshot("logs-filtered")


def test_charts_show_points_after_a_burst_of_traffic(tab: Tab, stack: Stack, apps: Apps) -> None:
    for _ in range(40):
        assert stack.get(stack.host(apps.other), "/hello").status_code == 200

    def plotted() -> bool:
        series = stack.http.get(
            f"{tab.base}/v1/apps/{apps.other}/metrics/series",
            headers={"Authorization": f"Bearer {stack.token}"},
        ).json()["functions"]
        return sum(p["requests"] for f in series for p in f["points"]) >= 40

    wait_for(plotted, timeout=10, message="the burst in the per-minute series")
    page = sign_in(tab, stack.token)
    apps_chart = page.locator(f'tr[data-app="{apps.other}"] svg.chart-requests')
    assert int(apps_chart.get_attribute("data-points") or 0) >= 1
    expect(apps_chart.locator("rect").first).to_be_visible()
    tab.screenshot("apps")
    tab.open(f"/apps/{apps.other}")
    row = page.locator('tr[data-function="hello"]')
    assert int(row.locator("svg.chart-requests").get_attribute("data-points") or 0) >= 1
    assert int(row.locator("svg.chart-latency").get_attribute("data-points") or 0) >= 1
    expect(row.locator("td").first).to_have_text("40")  # invocations
    tab.screenshot("app")


def test_a_post_without_its_csrf_token_is_refused(tab: Tab, stack: Stack, apps: Apps) -> None:
    sign_in(tab, stack.token)
    before = answer(stack, apps.main)
    refused = tab.context.request.post(f"{tab.base}/apps/{apps.main}/rollback", form={"to": "2"})
    assert refused.status == 403
    assert "CSRF" in refused.text()
    forged = tab.context.request.post(
        f"{tab.base}/apps/{apps.main}/rollback", form={"to": "2", "csrf": "guess"}
    )
    assert forged.status == 403
    assert tab.context.request.post(f"{tab.base}/logout").status == 403
    assert answer(stack, apps.main) == before
    tab.open("/")
    tab.screenshot("csrf")


def test_logout_and_revocation_end_the_session(tab: Tab, stack: Stack, apps: Apps) -> None:
    page = sign_in(tab, stack.token)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{tab.base}/login")
    tab.open("/")
    expect(page).to_have_url(f"{tab.base}/login?next=%2F")
    tab.screenshot("login")

    token = new_token(stack, admin=True)
    sign_in(tab, token)
    store = Store.from_url(stack.config.database_url)
    try:
        token_id = max(t.id for t in store.list_tokens())
        store.revoke_token(token_id)
    finally:
        store.close()
    tab.open(f"/apps/{apps.main}")
    expect(page).to_have_url(f"{tab.base}/login?next=%2Fapps%2F{apps.main}")


def test_a_push_in_flight_appears_on_the_deploys_page(tab: Tab, stack: Stack, apps: Apps) -> None:
    page = sign_in(tab, stack.token)
    tab.open(f"/apps/{apps.other}/deploys")
    before = page.locator("section.deploy").count()
    expect(page.locator("#deploys")).to_have_attribute(
        "data-stream",
        f"/apps/{apps.other}/deploys/stream?after="
        + page.locator("#deploys").get_attribute("data-stream").split("after=")[1],
    )  # type: ignore[union-attr]
    apps.other_work.commit("Other app, again", hello("other-2"))
    push = threading.Thread(target=apps.other_work.push, args=(stack.remote(apps.other),))
    push.start()
    newest = page.locator("section.deploy").first
    expect(page.locator("section.deploy")).to_have_count(before + 1, timeout=20_000)
    expect(newest.locator(".steps")).to_contain_text("Deploying", timeout=20_000)
    expect(newest.locator(".steps")).to_contain_text("live at", timeout=30_000)
    expect(newest.locator(".badge")).to_have_text("done")
    push.join(timeout=60)

    apps.other_work.commit("Too slow", {"edge.toml": MANIFEST + "timeout_ms = 60000\n"})
    refused = apps.other_work.push(stack.remote(apps.other), check=False)
    assert refused.returncode != 0
    apps.other_work.git("reset", "-q", "--hard", "HEAD~1")
    expect(page.locator("section.deploy")).to_have_count(before + 2, timeout=10_000)
    expect(newest.locator(".badge")).to_have_text("failed")
    expect(newest.locator(".steps")).to_contain_text("rejected")
    expect(newest.locator(".steps")).to_contain_text("timeout_ms")
    tab.screenshot("deploys")


def test_pages_fit_a_phone_screen(
    browser: Browser, stack: Stack, apps: Apps, tmp_path: Path
) -> None:
    phone = new_tab(
        browser, stack, tmp_path, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    try:
        page = sign_in(phone, stack.token)
        for path in ("/", f"/apps/{apps.main}", f"/apps/{apps.main}/logs"):
            phone.open(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        phone.open(f"/apps/{apps.main}")
        phone.screenshot("phone-app")
        phone.open("/")
        phone.screenshot("phone")
    finally:
        phone.context.close()
    assert phone.errors == []


def test_every_page_reads_without_javascript(
    browser: Browser, stack: Stack, apps: Apps, tmp_path: Path
) -> None:
    plain = new_tab(browser, stack, tmp_path, java_script_enabled=False)
    try:
        page = sign_in(plain, stack.token)
        expect(page.locator(f'tr[data-app="{apps.main}"] a.preview')).to_have_text("feature-x")
        plain.open(f"/apps/{apps.main}")
        expect(page.locator("table.releases tr[data-version]").first).to_be_visible()
        expect(page.locator('tr[data-function="hello"] svg.chart-requests')).to_be_visible()
        plain.open(f"/apps/{apps.main}/logs")
        expect(page.locator("#log li.kind-platform").first).to_be_visible()
        expect(page.locator("#pause")).to_be_hidden()  # live controls need the script
        plain.open(f"/apps/{apps.other}/deploys")
        expect(page.locator("section.deploy.state-done").first).to_contain_text("live at")
        plain.screenshot("no-javascript")
    finally:
        plain.context.close()
    assert plain.errors == []
