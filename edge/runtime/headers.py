"""Response headers a function sets: what passes through to the client.

Shared by both languages: :mod:`edge.runtime.python.frames` checks Python
replies with it; JavaScript ones are checked in the V8 host
(:func:`edge.runtime.js.modules.response_fields`, which tells the function why)
and again in the worker (:mod:`edge.runtime.js.pool`), as the host runs
untrusted code.

APPSEC: headers come from untrusted code. A name must be an HTTP token and a
value must be what HTTP/1.1 can carry (latin-1 text without control characters
other than tab: RFC 9110 field-value), or the reply is invalid (502, not the
server's generic 500). Framing headers are the server's business, and the
``x-edge-*`` headers are the platform's (request id, release, timings): a
function setting one is dropped, so it can neither desync the connection nor
forge or append to what the platform reports.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters but HTAB, and anything past latin-1.
UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
PLATFORM_PREFIX = "x-edge-"


def check_header(name: str, value: str) -> bool:
    """Whether to pass ``name: value`` on (``False``: the platform drops it).

    Raises:
        ValueError: the name or the value cannot be sent in HTTP, saying why.
    """
    if not TOKEN.fullmatch(name):
        raise ValueError(f"header name {name[:100]!r} is not a valid HTTP token")
    bad = UNSAFE_VALUE.search(value)
    if bad is not None:
        raise ValueError(
            f"header {name} has a character HTTP cannot carry in its value "
            f"({bad.group()!r} at {bad.start()}: control characters and text past "
            "latin-1 are not allowed; percent-encode it)"
        )
    lower = name.lower()
    return lower not in HOP_BY_HOP and not lower.startswith(PLATFORM_PREFIX)


# Pairs already checked, and whether each passes: a function sends the same few
# again and again (0.66 us a check, 0.09 looked up). Short pairs only, so that
# the memory stays small; cleared when full. A pair that raises is not kept.
CHECKED_PAIRS = 1024
CHECKED_SIZE = 256
_checked: dict[tuple[str, str], bool] = {}


def header_passes(name: str, value: str) -> bool:
    """:func:`check_header`, remembered for pairs seen before (both must be ``str``).

    Raises:
        ValueError: as :func:`check_header`.
    """
    passes = _checked.get((name, value))
    if passes is None:
        passes = check_header(name, value)
        if len(name) + len(value) <= CHECKED_SIZE:
            if len(_checked) >= CHECKED_PAIRS:
                _checked.clear()
            _checked[name, value] = passes
    return passes
