"""Web-platform-tests inside a deployed JavaScript function, measured per area.

Every file under tests/data/wpt/ (see its SOURCES.md) runs through the real
platform: one app pushed once (tests/data/wpt-app/wpt.js), then one request per
file carrying a fresh testharness.js, the file's ``// META: script=``
dependencies and the file itself. Pass counts are checked per file and per
area against the floors in tests/data/wpt-floors.json, which only rise:
``EDGE_WPT_RECORD=1`` raises them to what this run passed (never lowers them);
``EDGE_WPT_ONLY=<path prefix>`` runs some files only, ``EDGE_WPT_REPORT=<file>``
writes every result.
The README's JavaScript section gives the counts next to workerd's and Node 20's.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, Workdir

DATA = Path(__file__).resolve().parent.parent / "data"
WPT = DATA / "wpt"
FLOORS = DATA / "wpt-floors.json"
DEADLINE_MS = 5000
MANIFEST = """
[functions.wpt]
entry = "wpt.js"
routes = ["POST /run"]
memory_mb = 256
timeout_ms = 30000
"""
# Areas as in SOURCES.md (the anchors' table), by path prefix.
AREAS = {
    "fetch, encoding basics, URLSearchParams": (
        "fetch/",
        "encoding/api-basics",
        "encoding/textdecoder-fatal",
        "url/",
    ),
    "streams": ("streams/",),
    "Web Crypto": ("WebCryptoAPI/",),
    "File API": ("FileAPI/",),
    "FormData": ("xhr/formdata/",),
    "abort / events": ("dom/",),
    "encoding labels, encodeInto": ("encoding/",),
    "compression": ("compression/",),
    "structured clone": ("html/",),
}
# What the anchors measured on these files (../shared/ANCHORS.md).
WORKERD = {
    "fetch, encoding basics, URLSearchParams": 263,
    "streams": 56,
    "Web Crypto": 404,
    "File API": 136,
    "FormData": 30,
    "abort / events": 44,
    "encoding labels, encodeInto": 353,
    "compression": 81,
    "structured clone": 117,
}
META_SCRIPT = re.compile(r"^//\s*META:\s*script=(\S+)", re.M)
SUB_VALUES = {"{{host}}": "web-platform.test", "{{ports[http][0]}}": "8000"}


def area_of(path: str) -> str:
    return next(area for area, prefixes in AREAS.items() if path.startswith(prefixes))


def wpt_files() -> list[str]:
    found = [*WPT.rglob("*.any.js"), *WPT.rglob("*.html")]
    return sorted(str(p.relative_to(WPT)) for p in found)


def _resolve(base: str, ref: str) -> str:
    if ref.startswith("/"):
        return ref.lstrip("/")
    return os.path.normpath(os.path.join(os.path.dirname(base), ref))


def scripts_for(path: str) -> list[list[str]]:
    """The file's dependencies then the file, as ``[wpt path, source]`` pairs."""
    text = (WPT / path).read_text(encoding="utf-8")
    if path.endswith(".html"):  # the inline scripts; its only sources are the harness's
        for key, value in SUB_VALUES.items():
            text = text.replace(key, value)
        inline = re.findall(r"<script>(.*?)</script>", text, re.S)
        return [["/" + path, "\n".join(inline)]]
    deps = [_resolve(path, ref) for ref in META_SCRIPT.findall(text)]
    return [["/" + d, (WPT / d).read_text(encoding="utf-8")] for d in deps] + [["/" + path, text]]


@pytest.fixture(scope="module")
def wpt_host(runtime_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = "wpt-" + uuid.uuid4().hex[:8]
    work = Workdir(Path(tmp_path_factory.mktemp("wpt")) / name)
    driver = (DATA / "wpt-app" / "wpt.js").read_text(encoding="utf-8")
    work.commit("wpt driver", {"edge.toml": MANIFEST, "wpt.js": driver})
    out = work.push(runtime_stack.remote(name))
    assert "v1 live at" in out.stderr, out.stderr
    yield runtime_stack.host(name)


def run_file(stack: Stack, host: str, harness: str, path: str) -> dict:
    body = {"harness": harness, "scripts": scripts_for(path), "deadline_ms": DEADLINE_MS}
    resp = stack.call("POST", host, "/run", json=body)
    assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:300]}"
    return dict(resp.json())


def test_wpt_pass_counts_never_fall(runtime_stack: Stack, wpt_host: str) -> None:
    harness = (WPT / "resources" / "testharness.js").read_text(encoding="utf-8")
    floors: dict[str, int] = json.loads(FLOORS.read_text()) if FLOORS.exists() else {}
    passed: dict[str, int] = {}
    report: dict[str, dict] = {}
    only = os.environ.get("EDGE_WPT_ONLY", "")  # a path prefix, to iterate on one area
    for path in (p for p in wpt_files() if p.startswith(only)):
        result = run_file(runtime_stack, wpt_host, harness, path)
        passed[path] = sum(1 for _, status, _ in result["results"] if status == "PASS")
        report[path] = result
    if os.environ.get("EDGE_WPT_REPORT"):
        Path(os.environ["EDGE_WPT_REPORT"]).write_text(json.dumps(report, indent=1))
    by_area = {area: 0 for area in AREAS}
    for path, count in passed.items():
        by_area[area_of(path)] += count
    print("\nWPT passes per area (workerd):")
    for area, count in by_area.items():
        print(f"  {area}: {count} ({WORKERD[area]})")
    if os.environ.get("EDGE_WPT_RECORD") == "1":
        raised = {p: max(passed.get(p, 0), floors.get(p, 0)) for p in {*passed, *floors}}
        FLOORS.write_text(json.dumps(dict(sorted(raised.items())), indent=1) + "\n")
        floors = raised
    floors = {p: n for p, n in floors.items() if p.startswith(only)}
    fell = {p: f"{passed.get(p, 0)} < {n}" for p, n in floors.items() if passed.get(p, 0) < n}
    assert fell == {}, f"web-platform-tests passing fewer than their floors: {fell}"
    assert set(passed) <= set(floors), f"files without a floor: {sorted(set(passed) - set(floors))}"
    if not only:  # the recorded floors themselves stay at or above workerd's, per area
        floor_by_area = {area: 0 for area in AREAS}
        for path, n in floors.items():
            floor_by_area[area_of(path)] += n
        below = {a: f"{n} < {WORKERD[a]}" for a, n in floor_by_area.items() if n < WORKERD[a]}
        assert below == {}, f"areas whose floors are below workerd's: {below}"
