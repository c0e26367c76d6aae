"""How a problem line quotes edge.toml: a value and the key path it sits at.

Values come from a pushed file: each is shown short, on one line, and safe to
print on a terminal (strings as JSON).
"""

from __future__ import annotations

import json
import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


def show(value: object, limit: int = 40, depth: int = 0) -> str:
    """A short, single-line, terminal-safe rendering of a TOML value."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= limit else value[:limit] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if depth > 1:
            return "[...]"
        items = [show(item, 12, depth + 1) for item in value[:3]]
        return "[" + ", ".join(items + (["..."] if len(value) > 3 else [])) + "]"
    if isinstance(value, dict):
        return "{...}"
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def child_path(parent: str, key: str | int) -> str:
    """The key path of ``key`` (a table key or a list index) inside ``parent``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    shown = key if _BARE_KEY.fullmatch(key) else show(key, 30)
    return f"{parent}.{shown}" if parent else shown
