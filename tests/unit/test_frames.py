"""Length-prefixed frames cut out of a byte stream, however the reads fall."""

from __future__ import annotations

import itertools

import pytest

from edge.runtime.wire import FrameBuffer, FrameTooLarge, decode, encode

MESSAGES = [{"status": 200, "body": b"x" * 10_000}, ["resp", 7, b""], "é" * 300, {}]
STREAM = b"".join(encode(m) for m in MESSAGES)


def reads(cuts: list[int]) -> list[bytes]:
    """STREAM cut at these offsets, as a socket's reads might arrive."""
    edges = [0, *cuts, len(STREAM)]
    return [STREAM[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize(
    "cuts",
    [
        [],  # every frame in one read: views of it, nothing buffered
        [1, 2, 3],  # a length prefix in pieces
        [10_022],  # the first frame (10,022 bytes), then the rest whole
        [10_008],  # within the first frame
        list(range(0, len(STREAM), 997)),  # across every boundary
        [4, 10_008, 10_023],
    ],
)
def test_split_gives_every_frame_once_in_order(cuts: list[int]) -> None:
    frames = FrameBuffer()
    got = [decode(p) for data in reads(cuts) for p in frames.split(data)]
    assert got == MESSAGES and frames.pending == 0


def test_a_partial_frame_waits_for_the_rest() -> None:
    frames = FrameBuffer()
    whole, half = encode(MESSAGES[0]), encode(MESSAGES[1])
    first = frames.split(whole + half[:5])
    assert [decode(p) for p in first] == [MESSAGES[0]] and frames.pending == 5
    assert [decode(p) for p in frames.split(half[5:])] == [MESSAGES[1]]


def test_split_refuses_a_frame_over_the_limit() -> None:
    frames = FrameBuffer(limit=100)
    with pytest.raises(FrameTooLarge):
        frames.split(encode(b"y" * 200))
