"""How the V8 host reads a d() result: JSON, then the text bodies after it."""

from __future__ import annotations

import json

import pytest

from edge.runtime.js.modules import TAIL, parse_result, response_fields


def result(done: list[list[object]], texts: str) -> str:
    return json.dumps([done, 0, [], [], [], 0]) + "\n" + texts


def item(rid: int, kind: int, body: object) -> list[object]:
    return [rid, 200, [["content-type", "text/plain"]], kind, body, [], None]


def utf16_len(text: str) -> int:
    """A text's length as JavaScript counts it."""
    return len(text.encode("utf-16-le")) // 2


def test_text_bodies_are_cut_from_the_tail_in_order() -> None:
    texts = ["plain", "", "héllo €", "astral 😀😀 x", "last"]
    done = [item(i, TAIL, utf16_len(t)) for i, t in enumerate(texts) if t]
    done.insert(1, item(9, 2, "AAEC"))  # base64 bytes stay in the JSON
    parsed = parse_result(result(done, "".join(texts)))
    bodies = [response_fields(i)[2] for i in parsed[0]]
    assert bodies == [b"plain", b"\x00\x01\x02", *(t.encode() for t in texts[2:])]


def test_a_result_without_texts_is_plain_json() -> None:
    parsed = parse_result(result([item(1, 1, "inline")], ""))
    assert response_fields(parsed[0][0])[2] == b"inline"


@pytest.mark.parametrize("size", [-1, 99, "3", None, 2.0])
def test_a_length_that_does_not_fit_is_refused_for_its_item_only(size: object) -> None:
    done = [item(1, TAIL, 2), item(2, TAIL, size), item(3, 1, "inline")]
    parsed = parse_result(result(done, "ok"))
    assert response_fields(parsed[0][0])[2] == b"ok"
    with pytest.raises(ValueError, match="bad body kind"):
        response_fields(parsed[0][1])
    assert response_fields(parsed[0][2])[2] == b"inline"


def test_a_length_that_splits_a_surrogate_pair_is_refused() -> None:
    done = [item(1, TAIL, 1), item(2, TAIL, 1)]
    parsed = parse_result(result(done, "😀"))
    for part in parsed[0]:
        with pytest.raises(ValueError, match="bad body kind"):
            response_fields(part)
