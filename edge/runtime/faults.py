"""Platform faults: one table, one JSON shape, one wording per fault.

Every response the platform makes itself, rather than the function, is JSON of
one shape, whichever language the function is written in and whichever part of
the runtime noticed the fault::

    {"error": "<fault>", "message": "<what happened, naming the function>", "request_id": "..."}

The Python pool, the JavaScript pool (for faults the V8 host reports) and the
dispatcher all answer through :func:`fault_outcome` or :func:`fault_response`;
the V8 host words its log lines with :func:`fault_message`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from edge.runtime.invocation import FunctionVersion, LogRecord, Outcome


@dataclass(frozen=True)
class Fault:
    """How one kind of fault is answered.

    Attributes:
        status: the HTTP status.
        text: the message, a ``str.format`` template over the function's
            ``function``, ``timeout_ms``, ``memory_mb`` and ``max_instances``
            plus the details the caller gives.
        retry_after: whether the client should retry (adds ``retry-after: 1``).
    """

    status: int
    text: str
    retry_after: bool = False


FAULTS: Mapping[str, Fault] = MappingProxyType(
    {
        "exception": Fault(
            500, "function {function} raised an uncaught exception (the traceback is in its logs)"
        ),
        "timeout": Fault(504, "function {function} timed out after {timeout_ms} ms"),
        "memory": Fault(502, "function {function}: memory limit of {memory_mb} MB exceeded"),
        "crash": Fault(502, "function {function} {reason}"),
        "invalid_response": Fault(
            502, "function {function} sent an invalid response (the reason is in its logs)"
        ),
        "load": Fault(502, "function {function} failed to start: {reason}"),
        "overloaded": Fault(
            503,
            "function {function} is at its limit of {limit} concurrent requests; retry later",
            retry_after=True,
        ),
        "unavailable": Fault(503, "function {function} is unavailable: {reason}"),
        "not_found": Fault(404, "{reason}"),
        "wrong_region": Fault(
            404, "function {function} does not run in region {region}; it runs in: {regions}"
        ),
        "too_large": Fault(413, "request body exceeds the {limit_mb} MB limit"),
        "response_too_large": Fault(
            502,
            "function {function} returned a response body over the {limit_mb} MB limit "
            "(EDGE_MAX_RESPONSE_MB); stream large bodies instead",
        ),
    }
)

JSON_HEADERS = (("content-type", "application/json"),)


def fault_message(fault: str, version: FunctionVersion | None = None, **details: Any) -> str:
    """The wording of ``fault`` for ``version`` (``KeyError`` for an unknown fault)."""
    names: dict[str, Any] = {}
    if version is not None:
        names = {
            "function": version.name,
            "timeout_ms": version.timeout_ms,
            "memory_mb": version.memory_mb,
            "max_instances": version.max_instances,
        }
    return FAULTS[fault].text.format(**names, **details)


def fault_response(
    fault: str,
    request_id: str,
    message: str,
    extra: Mapping[str, Any] | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` of a platform-made answer."""
    spec = FAULTS[fault]
    body = {"error": fault, "message": message, "request_id": request_id, **(extra or {})}
    headers = list(JSON_HEADERS)
    if spec.retry_after:
        headers.append(("retry-after", "1"))
    return spec.status, headers, json.dumps(body).encode()


def fault_outcome(
    fault: str,
    version: FunctionVersion,
    request_id: str,
    *,
    logs: Iterable[LogRecord] = (),
    memory_peak_kb: int = 0,
    **details: Any,
) -> Outcome:
    """The :class:`Outcome` a pool answers for ``fault`` in ``version``."""
    message = fault_message(fault, version, **details)
    status, headers, body = fault_response(fault, request_id, message)
    return Outcome(
        status,
        headers,
        body,
        error=fault,
        logs=list(logs),
        memory_peak_kb=memory_peak_kb,
        message=message,
    )
