"""WHATWG URL conformance of the JavaScript runtime's URL and URLSearchParams.

The web-platform-tests data files (tests/data/wpt-urltestdata.json, 869 cases,
and tests/data/wpt-url-setters.json) run inside a real edge function, in the V8
host process (V8 is never started in the test process, which may fork).
Cloudflare's workerd passes 861/869 of the parsing cases and Node 20 862/869.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from edge.runtime.invocation import FunctionVersion, Invocation
from edge.runtime.js.client import V8Host
from edge.runtime.js.pool import JsPool

DATA = Path(__file__).resolve().parent.parent / "data"
EXPECTED_PARSE_PASSES = 869
EXPECTED_SETTER_PASSES = 274
WORKERD_PARSE_PASSES = 861

HARNESS = """\
const KEYS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port",
  "pathname", "search", "hash"];
const show = (v) => JSON.stringify(v);

function parsing(cases) {
  const failures = [];
  let total = 0;
  for (const c of cases) {
    if (typeof c === "string") continue;
    total++;
    let url;
    try {
      url = c.base === null || c.base === undefined ? new URL(c.input) : new URL(c.input, c.base);
    } catch (e) {
      if (!c.failure) failures.push(`${show(c.input)} base ${show(c.base)}: threw ${e.message}`);
      continue;
    }
    const label = `${show(c.input)} base ${show(c.base)}`;
    if (c.failure) { failures.push(`${label}: parsed as ${url.href}`); continue; }
    const bad = KEYS.filter((k) => k in c && url[k] !== c[k])
      .map((k) => `${k} ${show(url[k])} != ${show(c[k])}`);
    if (bad.length) failures.push(`${label}: ${bad.join(", ")}`);
  }
  return { total, failures };
}

function setters(data) {
  const failures = [];
  let total = 0;
  for (const [setter, cases] of Object.entries(data)) {
    if (setter === "comment") continue;
    for (const c of cases) {
      total++;
      try {
        const url = new URL(c.href);
        url[setter] = c.new_value;
        const bad = Object.keys(c.expected).filter((k) => url[k] !== c.expected[k])
          .map((k) => `${k} ${show(url[k])} != ${show(c.expected[k])}`);
        const label = `${setter}=${show(c.new_value)} on ${c.href}`;
        if (bad.length) failures.push(`${label}: ${bad.join(", ")}`);
      } catch (e) {
        failures.push(`${setter}=${show(c.new_value)} on ${c.href}: threw ${e}`);
      }
    }
  }
  return { total, failures };
}

export default {
  async fetch(request) {
    const { kind, data } = await request.json();
    return Response.json(kind === "parsing" ? parsing(data) : setters(data));
  },
};
"""


def run_in_v8(tmp_path: Path, kind: str, data: Any) -> dict[str, Any]:
    (tmp_path / "conformance.js").write_text(HARNESS)
    version = FunctionVersion(
        key="url-conformance",
        app="tests",
        environment="production",
        release=1,
        name="conformance",
        runtime="js",
        root=tmp_path,
        path="conformance.js",
        handler="",
        env={},
        memory_mb=128,
        timeout_ms=30000,
    )
    body = json.dumps({"kind": kind, "data": data}).encode()
    invocation = Invocation(
        method="POST",
        url="http://tests.edge.localhost/",
        path="/",
        query_string="",
        headers=[],
        body=body,
        params={},
        request_id="r",
    )

    async def main() -> dict[str, Any]:
        host = V8Host()
        try:
            pool = JsPool(version, host)
            await pool.start()
            outcome = await pool.invoke(invocation)
            assert outcome.status == 200, (outcome.body, outcome.logs)
            return dict(json.loads(outcome.body))
        finally:
            await host.close()

    return asyncio.run(main())


def test_url_parsing_conformance(tmp_path: Path) -> None:
    cases = json.loads((DATA / "wpt-urltestdata.json").read_text())
    result = run_in_v8(tmp_path, "parsing", cases)
    passed = result["total"] - len(result["failures"])
    assert result["total"] == 869
    assert passed == EXPECTED_PARSE_PASSES, "\n".join(result["failures"])
    assert passed >= WORKERD_PARSE_PASSES


def test_url_setters_conformance(tmp_path: Path) -> None:
    data = json.loads((DATA / "wpt-url-setters.json").read_text())
    result = run_in_v8(tmp_path, "setters", data)
    passed = result["total"] - len(result["failures"])
    assert result["total"] == 274
    assert passed == EXPECTED_SETTER_PASSES, "\n".join(result["failures"])
