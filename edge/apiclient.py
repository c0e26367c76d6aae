"""The command line's client of the control plane's API (``edge apps``, ``edge kv``, ...).

Calls are authenticated with ``EDGE_TOKEN``, or on the platform host with the
admin token ``edge up`` wrote; every failure is a :class:`ClientError` whose
message says what to do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from edge.config import Config


class ClientError(Exception):
    """The control plane answered with an error (its message is shown as is)."""


def token(config: Config) -> str:
    """The API token: ``EDGE_TOKEN``, else the admin token on the platform host."""
    if config.token:
        return config.token
    path = config.home / "admin.token"
    if path.is_file():
        return path.read_text().strip()
    raise ClientError(
        "no API token: set EDGE_TOKEN, or run this on the platform host "
        f"where `edge up` wrote {path}"
    )


def api(config: Config, method: str, path: str, body: Any = None) -> Any:
    """Call the control plane's API with the configured token."""
    with _open(config, _request(config, method, path, body), timeout=120) as resp:
        return json.loads(resp.read() or b"null")


def stream(config: Config, path: str) -> Iterator[dict[str, Any]]:
    """Records from a Server-Sent Events response, as they arrive.

    The control plane ends a stream after EDGE_MAX_STREAM_S; it is then
    reopened from the last record seen (``Last-Event-ID``), so nothing is missed.
    """
    last_id: str | None = None
    while True:
        ended = False
        request = _request(config, "GET", path)
        if last_id:
            request.add_header("Last-Event-ID", last_id)
        with _open(config, request, timeout=None) as resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("id: "):
                    last_id = line[len("id: ") :]
                elif line == "event: end":
                    ended = True
                elif line.startswith("data: ") and not ended:
                    yield json.loads(line[len("data: ") :])
        if not ended:
            return


def _request(config: Config, method: str, path: str, body: Any = None) -> urllib.request.Request:
    data = None if body is None else json.dumps(body).encode()
    return urllib.request.Request(  # noqa: S310 - the configured platform URL
        config.platform_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token(config)}", "Content-Type": "application/json"},
    )


def _open(config: Config, request: urllib.request.Request, timeout: float | None) -> Any:
    """The response to ``request``; the API's error message as a :class:`ClientError`."""
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error") or exc.reason
        except ValueError:
            message = exc.reason
        raise ClientError(f"{exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise ClientError(
            f"cannot reach the control plane at {config.platform_url}: "
            f"{exc.reason} (is `edge up` running? set EDGE_PLATFORM_URL)"
        ) from None
