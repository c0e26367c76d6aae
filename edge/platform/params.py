"""The ``/v1`` API's inputs, read and checked: JSON bodies and query parameters.

Every bad input is an :class:`~edge.errors.EdgeError` (400) naming the field
and the rule, so a client learns what to fix; nothing malformed reaches the
store or Redis (where a NUL byte, a 30-digit number or an infinite duration
used to become a 500).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import falcon

from edge.errors import EdgeError
from edge.platform.environments import environment_for_branch
from edge.snapshot import LABEL_RULE, PRODUCTION, is_label

# A secret's value is at most 64 KiB of UTF-8; JSON may spell each byte as \uXXXX.
MAX_BODY_BYTES = 512 * 1024
MAX_TEXT = 255
MAX_SINCE_S = 366 * 86400
_WHOLE = re.compile(r"-?[0-9]{1,18}")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def json_object(
    req: falcon.Request, fields: Mapping[str, str], max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The request body as a JSON object with only ``fields`` (name -> description).

    An empty body is ``{}``; one over ``max_bytes`` is refused.
    """
    # A chunked body has no Content-Length: falcon's bounded stream would read it as
    # empty (a rollback body then meant "the previous release"); gunicorn de-chunks
    # the raw stream, which ends with the body.
    stream = req.bounded_stream if req.content_length is not None else req.stream
    raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise EdgeError(f"request body: larger than {max_bytes // 1024} KiB")
    if not raw.strip():
        return {}
    example = "{" + ", ".join(f'"{name}": {kind}' for name, kind in fields.items()) + "}"
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise EdgeError(f"request body: not valid JSON ({reason}); send {example}") from None
    if not isinstance(body, dict):
        raise EdgeError(
            f"request body: must be a JSON object like {example}, not {type(body).__name__}"
        )
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise EdgeError(
            f"request body: unknown field {unknown[0]!r}; the fields are: {', '.join(fields)}"
        )
    return body


def int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """``body[name]`` as a whole number in ``[low, high]``; ``None`` when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise EdgeError(f"{name!r}: must be a whole number (got {_show(value)})")
    if not low <= value <= high:
        raise EdgeError(f"{name!r}: must be between {low} and {high} (got {_show(value)})")
    return value


def int_param(req: falcon.Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as a whole number in ``[low, high]``."""
    raw = req.get_param(name)
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw):
        raise EdgeError(f"{name}={_show(raw)}: must be a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise EdgeError(f"{name}={value}: must be between {low} and {high}")
    return value


def bool_param(req: falcon.Request, name: str) -> bool:
    """Query parameter ``name`` as a flag: true/false, 1/0, yes/no, on/off."""
    raw = req.get_param(name)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise EdgeError(f"{name}={_show(raw)}: must be true or false (or 1 or 0)")


def env_param(req: falcon.Request, app: str) -> str | None:
    """``?env=``: production (also ``main``), a preview by its branch or its name, or ``None``."""
    raw = text_param(req, "env")
    if raw is None:
        return None
    return PRODUCTION if raw in ("main", PRODUCTION) else environment_for_branch(raw, app)


def label_param(req: falcon.Request, name: str) -> str | None:
    """A query parameter naming a function: a DNS label, or ``None`` when absent."""
    raw = text_param(req, name)
    if raw is not None and not is_label(raw):
        raise EdgeError(f"{name}={_show(raw)}: a function name is {LABEL_RULE}")
    return raw


def since_param(req: falcon.Request) -> float | None:
    """``?since=``: ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"`` or plain seconds -> seconds."""
    text = text_param(req, "since")
    if text is None:
        return None
    rule = "use a duration like 30s, 10m, 2h or 1d, at most 366d"
    number, unit = (text[:-1], text[-1]) if text[-1] in _DURATION_UNITS else (text, "s")
    try:
        value = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        raise EdgeError(f"since={_show(text)}: {rule}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SINCE_S:
        raise EdgeError(f"since={_show(text)}: must be positive; {rule}")
    return value


def text_param(req: falcon.Request, name: str) -> str | None:
    """A text parameter; empty (``?env=``) is the same as absent."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT or not raw.isprintable():
        raise EdgeError(
            f"{name}={_show(raw)}: at most {MAX_TEXT} printable characters (no control characters)"
        )
    return raw


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
