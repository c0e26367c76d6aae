"""``python -m bench.delayline``: point-to-point links with a one-way delay, in user space.

What ``tc qdisc ... netem delay`` does on a veth pair, for kernels built without
netem (``CONFIG_NET_SCH_NETEM``; ``tc`` then says "Specified qdisc kind is
unknown"). Each link is a pair of TUN devices, one created inside each of two
network namespaces; this process reads every IP packet one end sends and writes
it into the other end ``delay`` milliseconds later, in order. The devices exist
only while this process holds them, so they vanish with it.

Usage: ``python -m bench.delayline NS_A:IF_A:NS_B:IF_B:DELAY_MS ...``; it prints
``ready`` once every device exists (the caller then addresses them with ``ip``),
and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import struct
import sys
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536


@dataclass(frozen=True)
class LinkSpec:
    """Two ends (namespace, interface name) and the one-way delay between them."""

    ns_a: str
    if_a: str
    ns_b: str
    if_b: str
    delay_ms: float

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        try:
            ns_a, if_a, ns_b, if_b, delay = text.split(":")
            return cls(ns_a, if_a, ns_b, if_b, float(delay))
        except ValueError:
            raise SystemExit(
                f"bad link {text!r}: expected NS_A:IF_A:NS_B:IF_B:DELAY_MS, "
                "e.g. edge-cli:cli-tyo:edge-tyo:tyo-cli:7.5"
            ) from None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def open_tun(namespace: str, name: str) -> int:
    """A TUN device called ``name`` inside ``namespace``; its file descriptor."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    finally:
        _setns(home)
        os.close(target)
        os.close(home)
    return fd


def _pump(loop: asyncio.AbstractEventLoop, source: int, sink: int, delay_s: float) -> None:
    def deliver(packet: bytes) -> None:
        # The far end down (no address yet, or being torn down): a lost packet.
        with contextlib.suppress(OSError):
            os.write(sink, packet)

    def readable() -> None:
        while True:
            try:
                packet = os.read(source, MAX_PACKET)
            except BlockingIOError:
                return
            loop.call_later(delay_s, deliver, packet)

    loop.add_reader(source, readable)


async def serve(links: list[LinkSpec]) -> None:
    loop = asyncio.get_running_loop()
    for link in links:
        a = open_tun(link.ns_a, link.if_a)
        b = open_tun(link.ns_b, link.if_b)
        _pump(loop, a, b, link.delay_ms / 1000)
        _pump(loop, b, a, link.delay_ms / 1000)
    print("ready", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(serve([LinkSpec.parse(text) for text in argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
