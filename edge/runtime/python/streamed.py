"""A Python instance's streamed reply, from its socket into a :class:`BodyStream`.

After the head (``edge.runtime.python.process.stream`` describes the frames),
the instance's channel hands every frame to :class:`InstanceStream`, which
checks it (APPSEC: untrusted), queues chunks, and gives credit back as the
client takes them. Stopping the stream early (client gone, time limit) kills
the instance: it may be blocked anywhere in function code, and the pool
replaces it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.invocation import LogRecord
from edge.runtime.python.frames import InvalidReply, parse_stream_frame
from edge.runtime.python.sockets import InstanceChannel
from edge.runtime.streaming import BodyStream, WindowExceeded

logger = logging.getLogger(__name__)


class InstanceStream:
    """Feeds one instance's streamed reply into :attr:`body`.

    Args:
        instance: the busy instance that sent the head.
        label: the function, as log lines name it.
        on_end: called once with ``(instance, body)`` when the stream is over
            and falcon closed it; the instance is alive only if it ended cleanly.
    """

    def __init__(
        self,
        instance: InstanceChannel,
        label: str,
        on_end: Callable[[InstanceChannel, BodyStream], None],
    ) -> None:
        self.instance = instance
        self._label = label
        self.body = BodyStream(instance.send_ack, self._cancel)
        self.body.on_done(lambda body: on_end(instance, body))
        instance.stream_to(self._frame)

    def _frame(self, message: Any) -> None:
        body = self.body
        if message is None:  # the instance died (or was killed) mid-stream
            body.end("crash")
            return
        try:
            kind, data, error, logs = parse_stream_frame(message)
            if kind == "chunk":
                body.feed(data)
                return
        except (InvalidReply, WindowExceeded) as exc:
            self._invalid(str(exc))
            return
        self.instance.stream_to(None)
        if error == "memory":
            self.instance.kill()
        body.end(error, logs)

    def _invalid(self, why: str) -> None:
        pid = self.instance.pid
        logger.warning("function %s: instance %d killed: invalid stream: %s", self._label, pid, why)
        self.body.end(
            "invalid_response", [LogRecord(time.time(), "error", f"invalid response: {why}")]
        )
        self.instance.kill()

    def _cancel(self, reason: str) -> None:
        pid = self.instance.pid
        logger.info("function %s: instance %d stopped mid-stream: %s", self._label, pid, reason)
        self.instance.kill()
