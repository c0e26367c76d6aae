"""The realistic workload: parse a 2 KB JSON body, build a 10 KB JSON response.

The same work in three places, so their ratio measures the platform's cost
around it: a Python function and a JavaScript function deployed on Edge, and a
bare falcon resource on the same gunicorn settings (``bench.falcon_hello``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ITEMS = 96  # items in the response: ~10 KB of JSON


def request_body() -> bytes:
    """A 2 KB JSON order: a user, tags, a factor and 42 line items."""
    lines = [{"sku": f"SKU-{i:05d}", "qty": i % 7 + 1, "cents": 999 + 100 * i} for i in range(42)]
    order = {"user": "arthur", "tags": ["edge", "bench", "json"], "factor": 3, "lines": lines}
    return json.dumps(order).encode()


def respond(order: dict[str, Any]) -> dict[str, Any]:
    """What all three do with the order (the Python version of the JS below)."""
    total = sum(line["qty"] * line["cents"] for line in order["lines"])
    items = [
        {
            "id": i,
            "name": f"{order['user']}-item-{i}",
            "tags": order["tags"],
            "score": i * order["factor"],
            "share": total // (i + 1),
        }
        for i in range(ITEMS)
    ]
    return {"user": order["user"], "total": total, "items": items}


REAL_PY = f"""\
ITEMS = {ITEMS}


def handle(request):
    order = request.json()
    total = sum(line["qty"] * line["cents"] for line in order["lines"])
    items = [
        {{
            "id": i,
            "name": f"{{order['user']}}-item-{{i}}",
            "tags": order["tags"],
            "score": i * order["factor"],
            "share": total // (i + 1),
        }}
        for i in range(ITEMS)
    ]
    return {{"user": order["user"], "total": total, "items": items}}
"""

REAL_JS = f"""\
export default {{
  async fetch(request) {{
    const order = await request.json();
    let total = 0;
    for (const line of order.lines) total += line.qty * line.cents;
    const items = [];
    for (let i = 0; i < {ITEMS}; i++) {{
      items.push({{
        id: i,
        name: `${{order.user}}-item-${{i}}`,
        tags: order.tags,
        score: i * order.factor,
        share: Math.floor(total / (i + 1)),
      }});
    }}
    return Response.json({{ user: order.user, total, items }});
  }},
}};
"""


def wrk_script(folder: Path) -> Path:
    """A wrk Lua script that POSTs :func:`request_body` as JSON."""
    body = request_body().decode().replace("\\", "\\\\").replace('"', '\\"')
    path = folder / "post-order.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path
