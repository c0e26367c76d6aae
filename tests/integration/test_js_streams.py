"""A JS ``ReadableStream`` body through a real V8 host: every byte, in order.

Stream chunks leave V8 as one ArrayBuffer per ``d()`` round (not base64 in
JSON); this test checks the bytes the worker receives against what the
function produced, with chunks of many sizes (some split at 64 KiB), each a
view into the middle of a larger buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge.runtime.js.client import V8Host
from edge.runtime.wire import CHUNK_MAX

# Chunk i: (700 * i + 1) % 150001 bytes of the value i % 251, a view with 7
# other bytes on each side; ?n= chunks.
VIEWS = """\
export default {
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n"));
    let i = 0;
    return new Response(new ReadableStream({
      pull(controller) {
        if (i === n) { controller.close(); return; }
        const size = (700 * i + 1) % 150001;
        const buffer = new Uint8Array(size + 14).fill(255);
        controller.enqueue(buffer.subarray(7, 7 + size).fill(i % 251));
        i++;
      },
    }));
  },
};
"""


def expected(n: int) -> bytes:
    return b"".join(bytes([i % 251]) * ((700 * i + 1) % 150001) for i in range(n))


async def read_stream(host: V8Host, key: str, n: int) -> tuple[list[Any], bytes, list[int]]:
    """Invoke ``key`` and read its whole stream, granting credit as a client would."""
    url = f"http://shop.edge.localhost/?n={n}"
    head = await host.invoke(key, ["GET", url, [], b"", {}])
    done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    parts: list[bytes] = []

    def sink(frame: list[Any] | None) -> None:
        if frame is None or frame[0] == "end":
            done.set_result(frame or ["end", head[1], "lost", []])
            return
        parts.append(frame[2])
        host.ack(key, head[1], len(frame[2]))

    host.stream_to(head[1], sink)
    end = await asyncio.wait_for(done, 60)
    return [head[2], head[4], end[2]], b"".join(parts), [len(p) for p in parts]


def test_stream_bytes_arrive_whole_and_in_order() -> None:
    async def scenario() -> Any:
        host = V8Host()
        try:
            spec = {
                "name": "views",
                "filename": "functions/views.js",
                "source": VIEWS,
                "memory_mb": 64,
                "timeout_ms": 5000,
                "env": {},
            }
            host.register("views", spec)
            await host.load("views")
            return await read_stream(host, "views", 300)
        finally:
            await host.close()

    (status, body, error), data, sizes = asyncio.run(scenario())
    assert (status, body, error) == (200, None, None), "a streamed head, then a clean end"
    assert len(data) == len(expected(300))
    assert data == expected(300), "every byte of every chunk, in order"
    assert max(sizes) <= CHUNK_MAX
