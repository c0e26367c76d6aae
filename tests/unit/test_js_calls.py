"""The host-call bridge's Python side (edge/runtime/js/calls.py): what a
function's JavaScript may ask of the V8 host, checked without V8.

APPSEC: every op and argument comes from untrusted code; a bad one must come
back as an error answer naming the problem, never raise in the host.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac

import pytest

from edge.runtime.js import calls
from edge.runtime.js.compression import MAX_OPEN, ZlibStreams


def b(data: bytes) -> dict[str, str]:
    return {"$b": base64.b64encode(data).decode()}


def ok(op: str, *args: object) -> object:
    status, value = calls.perform(op, list(args), ZlibStreams())
    assert status == 1, value
    return calls.decode(value)


def test_digest_and_hmac_match_the_standard_library() -> None:
    assert ok("digest", "SHA-256", b(b"abc")) == hashlib.sha256(b"abc").digest()
    mac = ok("sign", {"name": "HMAC", "hash": "SHA-384"}, {"raw": b(b"k")}, b(b"msg"))
    assert mac == hmac.new(b"k", b"msg", hashlib.sha384).digest()
    assert ok("verify", {"name": "HMAC", "hash": "SHA-384"}, {"raw": b(b"k")}, b(mac), b(b"msg"))  # type: ignore[arg-type]


def test_key_pairs_sign_and_verify_across_formats() -> None:
    for alg in (
        {"name": "ECDSA", "namedCurve": "P-256", "hash": "SHA-256"},
        {"name": "Ed25519"},
        {
            "name": "RSA-PSS",
            "modulusLength": 1024,
            "publicExponent": b(b"\x01\x00\x01"),
            "hash": "SHA-256",
            "saltLength": 32,
        },
    ):
        pair = ok("generatePair", alg)
        assert isinstance(pair, dict)
        private = {"type": "private", "der": b(pair["private"])}
        public = {"type": "public", "der": b(pair["public"])}
        sig = ok("sign", alg, private, b(b"data"))
        assert ok("verify", alg, public, b(sig), b(b"data")) is True  # type: ignore[arg-type]
        assert ok("verify", alg, public, b(sig), b(b"datA")) is False  # type: ignore[arg-type]
        jwk = ok("exportKey", "jwk", public)
        again = ok(
            "importKey", {"name": alg["name"], "namedCurve": alg.get("namedCurve")}, "jwk", jwk
        )
        assert isinstance(again, dict) and again["type"] == "public"


def test_aes_gcm_round_trip_and_tamper() -> None:
    key, iv = b(b"k" * 32), b(b"i" * 12)
    sealed = ok("encrypt", {"name": "AES-GCM", "iv": iv}, {"raw": key}, b(b"secret"))
    assert isinstance(sealed, bytes)
    assert ok("decrypt", {"name": "AES-GCM", "iv": iv}, {"raw": key}, b(sealed)) == b"secret"
    status, error = calls.perform(
        "decrypt",
        [{"name": "AES-GCM", "iv": iv}, {"raw": key}, b(sealed[:-1] + b"x")],
        ZlibStreams(),
    )
    assert (status, error[0]) == (0, "OperationError")


def test_pbkdf2() -> None:
    bits = ok(
        "deriveBits",
        {"name": "PBKDF2", "hash": "SHA-256", "salt": b(b"salt"), "iterations": 1000},
        {"raw": b(b"pw")},
        256,
    )
    assert bits == hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000, 32)


def stream_call(streams: ZlibStreams, op: str, *args: object) -> list:
    return calls.perform(op, list(args), streams)


def test_gzip_streams_chunk_by_chunk() -> None:
    streams = ZlibStreams()
    _, sid = stream_call(streams, "zlib.open", "compress", "gzip")
    parts = [calls.decode(stream_call(streams, "zlib.push", sid, b(b"hello " * 50))[1])]
    parts.append(calls.decode(stream_call(streams, "zlib.end", sid)[1]))
    packed = b"".join(parts)
    assert gzip.decompress(packed) == b"hello " * 50
    _, sid = stream_call(streams, "zlib.open", "decompress", "gzip")
    out = [
        calls.decode(stream_call(streams, "zlib.push", sid, b(packed[i : i + 7]))[1])
        for i in range(0, len(packed), 7)
    ]
    assert b"".join(out) == b"hello " * 50
    assert stream_call(streams, "zlib.end", sid) == [1, {"$b": ""}]
    # a corrupt chunk fails at that chunk, and the stream is gone
    _, sid = stream_call(streams, "zlib.open", "decompress", "deflate")
    status, error = stream_call(streams, "zlib.push", sid, b(b"not deflate at all"))
    assert (status, error[0]) == (0, "TypeError")
    assert (
        stream_call(streams, "zlib.push", sid, b(b"x"))[1][1] == "this compression stream is closed"
    )
    # truncated input fails at the end
    _, sid = stream_call(streams, "zlib.open", "decompress", "gzip")
    stream_call(streams, "zlib.push", sid, b(packed[:-4]))
    status, error = stream_call(streams, "zlib.end", sid)
    assert status == 0 and "truncated" in error[1]


def test_open_streams_are_capped() -> None:
    streams = ZlibStreams()
    for _ in range(MAX_OPEN):
        assert stream_call(streams, "zlib.open", "compress", "deflate")[0] == 1
    status, error = stream_call(streams, "zlib.open", "compress", "deflate")
    assert (status, error[0]) == (0, "RangeError")


@pytest.mark.parametrize(
    ("op", "args", "name"),
    [
        ("eval", ["1+1"], "NotSupportedError"),
        (["digest"], [], "NotSupportedError"),
        ("digest", "not a list", "NotSupportedError"),
        ("digest", ["MD5", b(b"x")], "NotSupportedError"),
        ("digest", ["SHA-256", "not bytes"], "TypeError"),
        ("digest", ["SHA-256"], "OperationError"),
        ("digest", ["SHA-256", {"$b": "***"}], "OperationError"),
        (
            "sign",
            [{"name": "ECDSA", "hash": "SHA-256"}, {"type": "private", "der": b(b"junk")}, b(b"x")],
            "DataError",
        ),
        (
            "generatePair",
            [{"name": "RSA-PSS", "modulusLength": 1 << 20, "publicExponent": b(b"\x01\x00\x01")}],
            "OperationError",
        ),
        (
            "deriveBits",
            [
                {"name": "PBKDF2", "hash": "SHA-256", "salt": b(b"s"), "iterations": 0},
                {"raw": b(b"pw")},
                256,
            ],
            "OperationError",
        ),
        ("zlib.open", ["decompress", "brotli"], "TypeError"),
        ("zlib.push", [99, b(b"x")], "TypeError"),
        ("importKey", [{"name": "RSA-OAEP"}, "jwk", {"kty": "RSA", "n": 5}], "DataError"),
    ],
)
def test_bad_calls_get_named_errors(op: object, args: object, name: str) -> None:
    status, error = calls.perform(op, args, ZlibStreams())
    assert status == 0
    assert error[0] == name and error[1]


def test_calls_during_module_evaluation() -> None:
    asked = [[1, 0, "kv", {"op": "get"}], [2, 0, "host", ["digest", ["SHA-1", b(b"")]]]]
    (first, refused), (second, answered) = asyncio.run(calls.run_all(None, ZlibStreams(), asked))
    assert (first, refused["ok"], second) == (1, False, 2)
    assert "kv is not available while the module is evaluated" in refused["message"]
    assert calls.decode(answered) == [1, hashlib.sha1(b"").digest()]
