"""The host-call bridge's Python side (edge/runtime/js/calls.py): what a
function's JavaScript may ask of the V8 host, checked without V8.

APPSEC: every op and argument comes from untrusted code; a bad one must come
back as an error answer naming the problem, never raise in the host.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac

import pytest

from edge.runtime.js import calls


def b(data: bytes) -> dict[str, str]:
    return {"$b": base64.b64encode(data).decode()}


def ok(op: str, *args: object) -> object:
    status, value = calls.perform(op, list(args))
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
        "decrypt", [{"name": "AES-GCM", "iv": iv}, {"raw": key}, b(sealed[:-1] + b"x")]
    )
    assert (status, error[0]) == (0, "OperationError")


def test_pbkdf2_and_gzip() -> None:
    bits = ok(
        "deriveBits",
        {"name": "PBKDF2", "hash": "SHA-256", "salt": b(b"salt"), "iterations": 1000},
        {"raw": b(b"pw")},
        256,
    )
    assert bits == hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 1000, 32)
    packed = ok("compress", "gzip", b(b"hello " * 100))
    assert gzip.decompress(packed) == b"hello " * 100  # type: ignore[arg-type]
    assert ok("decompress", "gzip", b(packed)) == b"hello " * 100  # type: ignore[arg-type]


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
        ("decompress", ["gzip", b(b"not gzip")], "TypeError"),
        ("decompress", ["brotli", b(b"")], "TypeError"),
        ("importKey", [{"name": "RSA-OAEP"}, "jwk", {"kty": "RSA", "n": 5}], "DataError"),
    ],
)
def test_bad_calls_get_named_errors(op: object, args: object, name: str) -> None:
    status, error = calls.perform(op, args)
    assert status == 0
    assert error[0] == name and error[1]
