"""The steps of each deploy, as they happen, for the dashboard's deploy page.

Every deploy (a pushed ref, a rollback, an ``edge dev`` save) writes the same
progress lines the pusher sees to a capped Redis stream per app,
``edge:deploys:<app>``, one entry per line: ``deploy`` (an id shared by the
lines of one deploy), ``environment``, ``ts``, ``line`` and ``state``
(``running``, then a last entry ``done`` or ``failed``). Writing never fails a
deploy: a Redis error is logged and the deploy goes on.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis

logger = logging.getLogger(__name__)

STREAM_PREFIX = "edge:deploys:"
MAX_ENTRIES = 2000
Progress = Callable[[str], None]


def deploys_key(app: str) -> str:
    return STREAM_PREFIX + app


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class DeployLog:
    """Writes one deploy's steps; use :meth:`track` around the deploy."""

    def __init__(self, client: redis.Redis | None) -> None:
        self.client = client

    def _write(self, app: str, fields: dict[str, str]) -> None:
        if self.client is None:
            return
        try:
            self.client.xadd(
                deploys_key(app),
                fields,  # type: ignore[arg-type]
                maxlen=MAX_ENTRIES,
                approximate=True,
            )
        except (redis.RedisError, OSError) as exc:
            logger.warning("could not record a deploy step of %s: %s", app, exc)

    @contextmanager
    def track(self, app: str, env: str, progress: Progress) -> Iterator[Progress]:
        """A progress callback that also records each line; the deploy's end is
        recorded as ``done``, or ``failed`` when a line reported an error."""
        deploy = secrets.token_hex(6)
        failed = False

        def step(line: str) -> None:
            nonlocal failed
            failed = failed or line.startswith("error:") or " failed" in line
            progress(line)
            self._write(app, _fields(deploy, env, line, "running"))

        try:
            yield step
        except BaseException:
            failed = True
            raise
        finally:
            state = "failed" if failed else "done"
            self._write(app, _fields(deploy, env, f"deploy {state}", state))

    def rejected(self, app: str, env: str, line: str) -> None:
        """A push refused before it deployed: a deploy of one step, ``failed``."""
        self._write(app, _fields(secrets.token_hex(6), env, line, "failed"))


def _fields(deploy: str, env: str, line: str, state: str) -> dict[str, str]:
    return {
        "deploy": deploy,
        "environment": env,
        "ts": repr(time.time()),
        "line": line,
        "state": state,
    }


def _decode(entry_id: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {_text(k): _text(v) for k, v in fields.items()}
    record["id"] = _text(entry_id)
    record["ts"] = float(record.get("ts") or 0)
    return record


def read_deploys(client: redis.Redis, app: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest ``limit`` deploys of ``app``, newest first.

    Each is ``{"deploy", "environment", "started", "state", "steps": [record, ...]}``
    where a record has ``id``, ``ts``, ``line`` and ``state``.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    entries = cast(list[Any], client.xrevrange(deploys_key(app), count=limit * 12))
    deploys: dict[str, dict[str, Any]] = {}
    for entry_id, fields in reversed(entries):
        record = _decode(entry_id, fields)
        deploy = deploys.setdefault(
            record.get("deploy", ""),
            {
                "deploy": record.get("deploy", ""),
                "environment": record.get("environment", ""),
                "started": record["ts"],
                "state": "running",
                "steps": [],
            },
        )
        deploy["state"] = record.get("state", "running")
        deploy["steps"].append(record)
    newest = sorted(deploys.values(), key=lambda d: d["started"], reverse=True)
    return newest[:limit]


def last_id(client: redis.Redis, app: str) -> str:
    """The newest entry's id (``0-0`` when there is none): follow from there."""
    newest = cast(list[Any], client.xrevrange(deploys_key(app), count=1))
    return _text(newest[0][0]) if newest else "0-0"


def follow_deploys(
    client: redis.Redis, app: str, after: str, block_ms: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Tail the steps after stream id ``after``: one (maybe empty) batch per wait."""
    key = deploys_key(app)
    while True:
        reply: Any = client.xread({key: after}, count=500, block=block_ms)
        batch = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                after = _text(entry_id)
                batch.append(_decode(entry_id, fields))
        yield batch
