"""Which node a request for another region's function goes to: the nearest that answers."""

from __future__ import annotations

import asyncio

import httpx

from edge.keyring import Keyring, decode_key, new_key
from edge.runtime.fallback import Fallback, Peer


def fallback(*peers: Peer) -> Fallback:
    keyring = Keyring([decode_key(new_key(), "test")])
    # No Redis and no request is made: only the peer choice is exercised.
    chooser = Fallback("ap-tokyo", "tokyo:8080", httpx.AsyncClient(), None, keyring)
    chooser.peers = peers
    return chooser


def test_the_nearest_answering_node_of_the_functions_regions_comes_first() -> None:
    chooser = fallback(
        Peer("east:8080", "us-east", "http://east:8080", 190.0),
        Peer("west:8080", "eu-west", "http://west:8080", 120.0),
        Peer("down:8080", "eu-west", "http://down:8080", None),  # did not answer its probe
        Peer("sa:8080", "sa-east", "http://sa:8080", 5.0),  # runs other functions
    )
    nearest = chooser.candidates(["us-east", "eu-west"])
    assert [p.node for p in nearest] == ["west:8080", "east:8080"]
    chooser._down(nearest[0])  # it refused a connection: the next one, at once
    assert [p.node for p in chooser.candidates(["us-east", "eu-west"])] == ["east:8080"]
    assert chooser.candidates(["ap-south"]) == []
    asyncio.run(chooser.close())
