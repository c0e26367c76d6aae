"""Asymmetric keys in and out of Web Crypto's formats: raw, JWK, SPKI and PKCS#8.

Inside the platform a private key is PKCS#8 DER and a public key SPKI DER (see
:mod:`edge.runtime.js.webcrypto`); these functions convert from and to what a
function imports or exports. Secret keys (HMAC, AES, PBKDF2, HKDF) never come
here: ``js/crypto.js`` handles their raw and ``oct`` JWK forms itself.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
RSA_NAMES = ("RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP")
EC_NAMES = ("ECDSA", "ECDH")
RSA_PRIVATE_FIELDS = ("d", "p", "q", "dp", "dq", "qi")


class CryptoError(Exception):
    """A failed Web Crypto operation: ``name`` is the DOMException name JavaScript throws."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise CryptoError("DataError", f"JWK member {field} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise CryptoError("DataError", f"JWK member {field} is not base64url") from None


def _int_of(value: Any, field: str) -> int:
    return int.from_bytes(_unb64u(value, field), "big")


def _uint(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big")


def private_der(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def key_info(key: Any) -> dict[str, Any]:
    """The algorithm members a key brings: RSA size and exponent, EC curve, or kind."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
        numbers = public.public_numbers()
        return {
            "kind": "RSA",
            "modulusLength": key.key_size,
            "publicExponent": _uint(numbers.e),
        }
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"kind": "EC", "namedCurve": CURVE_NAMES.get(key.curve.name, key.curve.name)}
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return {"kind": "Ed25519"}
    if isinstance(key, (x25519.X25519PrivateKey, x25519.X25519PublicKey)):
        return {"kind": "X25519"}
    raise CryptoError("DataError", "unsupported key type")


def _kind_for(name: Any) -> str:
    if name in RSA_NAMES:
        return "RSA"
    if name in EC_NAMES:
        return "EC"
    if name in ("Ed25519", "X25519"):
        return str(name)
    raise CryptoError("NotSupportedError", f"{name} keys cannot be imported here")


def import_key(alg: dict[str, Any], fmt: Any, data: Any) -> dict[str, Any]:
    """``{type, der, info}`` for an asymmetric key in ``fmt`` (spki, pkcs8, raw, jwk)."""
    kind = _kind_for(alg.get("name"))
    try:
        if fmt == "spki" and isinstance(data, bytes):
            key: Any = serialization.load_der_public_key(data)
        elif fmt == "pkcs8" and isinstance(data, bytes):
            key = serialization.load_der_private_key(data, None)
        elif fmt == "raw" and isinstance(data, bytes):
            key = _from_raw(kind, alg, data)
        elif fmt == "jwk" and isinstance(data, dict):
            key = _from_jwk(kind, data)
        else:
            raise CryptoError("NotSupportedError", f"unsupported format {fmt} for {kind} keys")
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise CryptoError("DataError", f"invalid key data: {exc}") from None
    info = key_info(key)
    if info["kind"] != kind:
        raise CryptoError("DataError", f"the key is {info['kind']}, not {kind}")
    private = not hasattr(key, "public_bytes") or hasattr(key, "private_bytes")
    if private:
        return {"type": "private", "der": private_der(key), "info": info}
    return {"type": "public", "der": public_der(key), "info": info}


def _from_raw(kind: str, alg: dict[str, Any], data: bytes) -> Any:
    if kind == "EC":
        curve = CURVES.get(str(alg.get("namedCurve")))
        if curve is None:
            raise CryptoError("NotSupportedError", "unsupported namedCurve")
        return ec.EllipticCurvePublicKey.from_encoded_point(curve(), data)
    if kind == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    if kind == "X25519":
        return x25519.X25519PublicKey.from_public_bytes(data)
    raise CryptoError("NotSupportedError", f"raw import of {kind} keys is not supported")


def _from_jwk(kind: str, data: dict[str, Any]) -> Any:
    kty = data.get("kty")
    if kind == "RSA" and kty == "RSA":
        public = rsa.RSAPublicNumbers(_int_of(data.get("e"), "e"), _int_of(data.get("n"), "n"))
        if "d" not in data:
            return public.public_key()
        p, q, d, dp, dq, qi = (_int_of(data.get(f), f) for f in ("p", "q", "d", "dp", "dq", "qi"))
        return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public).private_key()
    if kind == "EC" and kty == "EC":
        curve = CURVES.get(str(data.get("crv")))
        if curve is None:
            raise CryptoError("DataError", "unsupported crv")
        x, y = _int_of(data.get("x"), "x"), _int_of(data.get("y"), "y")
        point = ec.EllipticCurvePublicNumbers(x, y, curve())
        if "d" not in data:
            return point.public_key()
        return ec.EllipticCurvePrivateNumbers(_int_of(data.get("d"), "d"), point).private_key()
    if kind in ("Ed25519", "X25519") and kty == "OKP" and data.get("crv") == kind:
        module: Any = ed25519 if kind == "Ed25519" else x25519
        cls_private = getattr(module, f"{kind}PrivateKey")
        cls_public = getattr(module, f"{kind}PublicKey")
        if "d" in data:
            return cls_private.from_private_bytes(_unb64u(data.get("d"), "d"))
        return cls_public.from_public_bytes(_unb64u(data.get("x"), "x"))
    raise CryptoError("DataError", f"JWK kty {kty!r} does not fit {kind}")


def export_key(fmt: Any, key: Any) -> bytes | dict[str, Any]:
    """``key`` (a loaded private or public key) in ``fmt``."""
    private = hasattr(key, "private_bytes")
    if fmt == "pkcs8" and private:
        return private_der(key)
    if fmt == "spki" and not private:
        return public_der(key)
    if fmt == "raw" and not private:
        if isinstance(key, ec.EllipticCurvePublicKey):
            return bytes(
                key.public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            )
        return bytes(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    if fmt == "jwk":
        return _to_jwk(key)
    raise CryptoError("InvalidAccessError", f"this key cannot be exported as {fmt}")


def _to_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        values = (n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp)
        out = _to_jwk(key.public_key())
        out.update({f: _b64u(_uint(v)) for f, v in zip(RSA_PRIVATE_FIELDS, values, strict=True)})
        return out
    if isinstance(key, rsa.RSAPublicKey):
        pn = key.public_numbers()
        return {"kty": "RSA", "n": _b64u(_uint(pn.n)), "e": _b64u(_uint(pn.e))}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        out = _to_jwk(key.public_key())
        out["d"] = _b64u(_uint(key.private_numbers().private_value, (key.curve.key_size + 7) // 8))
        return out
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        en = key.public_numbers()
        crv = CURVE_NAMES.get(key.curve.name, key.curve.name)
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64u(_uint(en.x, size)),
            "y": _b64u(_uint(en.y, size)),
        }
    raw = serialization.Encoding.Raw
    if isinstance(key, (ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey)):
        out = _to_jwk(key.public_key())
        out["d"] = _b64u(
            key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        )
        return out
    crv = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "X25519"
    return {
        "kty": "OKP",
        "crv": crv,
        "x": _b64u(key.public_bytes(raw, serialization.PublicFormat.Raw)),
    }
