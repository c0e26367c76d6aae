"""Web Crypto's primitives for the V8 host, on the ``cryptography`` package.

``js/crypto.js`` does what the Web Crypto spec asks of the API (normalising
algorithms, checking usages, holding ``CryptoKey``s) and sends each primitive
here through the host-call bridge (:mod:`edge.runtime.js.calls`). Keys travel
with every call and the host keeps no key state: a secret key as its raw bytes,
a private key as PKCS#8 DER, a public key as SPKI DER. Nothing here is
hand-rolled: every primitive is the ``cryptography`` package's.

APPSEC: the arguments come from a function's JavaScript, so every one is
checked by type (:func:`_bytes`, :func:`_int`, :func:`_text`); a bad one, or a
failed primitive, raises :class:`CryptoError`, which the function sees as a
``DOMException`` of the given name.
"""

from __future__ import annotations

import hmac as std_hmac
import os
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils, x25519
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from edge.runtime.js import keyformats
from edge.runtime.js.keyformats import CryptoError

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-1": hashes.SHA1,
    "SHA-256": hashes.SHA256,
    "SHA-384": hashes.SHA384,
    "SHA-512": hashes.SHA512,
}
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
MAX_RSA_BITS = 4096  # key generation past this takes many seconds of a host-call thread
MAX_ITERATIONS = 10_000_000


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise CryptoError("TypeError", f"{what} must be bytes")
    return value


def _int(value: Any, what: str, low: int = 0, high: int = 1 << 31) -> int:
    if type(value) is not int or not low <= value <= high:
        raise CryptoError("OperationError", f"{what} must be an integer in {low}..{high}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CryptoError("TypeError", f"{what} must be a string")
    return value


def _hash(name: Any) -> hashes.HashAlgorithm:
    cls = HASHES.get(_text(name, "hash"))
    if cls is None:
        raise CryptoError("NotSupportedError", f"unsupported hash {name}")
    return cls()


def _curve(name: Any) -> ec.EllipticCurve:
    cls = CURVES.get(_text(name, "namedCurve"))
    if cls is None:
        raise CryptoError("NotSupportedError", f"unsupported curve {name}")
    return cls()


def load_key(key: dict[str, Any]) -> Any:
    """A private or public key object from its DER (PKCS#8 / SPKI)."""
    der = _bytes(key.get("der"), "key")
    try:
        if key.get("type") == "private":
            return serialization.load_der_private_key(der, None)
        return serialization.load_der_public_key(der)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise CryptoError("DataError", f"invalid key data: {exc}") from None


def digest(alg: str, data: Any) -> bytes:
    h = hashes.Hash(_hash(alg))
    h.update(_bytes(data, "data"))
    return h.finalize()


def _hmac(hash_name: Any, key: Any, data: Any) -> bytes:
    mac = hmac.HMAC(_bytes(key, "key"), _hash(hash_name))
    mac.update(_bytes(data, "data"))
    return mac.finalize()


def _ec_size(key: Any) -> int:
    return (int(key.curve.key_size) + 7) // 8


def sign(alg: dict[str, Any], key: dict[str, Any], data: Any) -> bytes:
    """Sign ``data``; ``alg`` carries the key's hash (and the call's saltLength/hash)."""
    name, data = alg.get("name"), _bytes(data, "data")
    if name == "HMAC":
        return _hmac(alg.get("hash"), key.get("raw"), data)
    private = load_key(key)
    try:
        if name == "RSASSA-PKCS1-v1_5" and isinstance(private, rsa.RSAPrivateKey):
            return private.sign(data, asym_padding.PKCS1v15(), _hash(alg.get("hash")))
        if name == "RSA-PSS" and isinstance(private, rsa.RSAPrivateKey):
            h = _hash(alg.get("hash"))
            salt = _int(alg.get("saltLength"), "saltLength", 0, 1 << 16)
            return private.sign(data, asym_padding.PSS(asym_padding.MGF1(h), salt), h)
        if name == "ECDSA" and isinstance(private, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(private.sign(data, ec.ECDSA(_hash(alg.get("hash")))))
            size = _ec_size(private)
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if name == "Ed25519" and isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(data)
    except ValueError as exc:
        raise CryptoError("OperationError", str(exc)) from None
    raise CryptoError("InvalidAccessError", f"the key cannot sign with {name}")


def verify(alg: dict[str, Any], key: dict[str, Any], signature: Any, data: Any) -> bool:
    """True when ``signature`` is ``data``'s under ``key``."""
    name, data, signature = alg.get("name"), _bytes(data, "data"), _bytes(signature, "signature")
    if name == "HMAC":
        return hmac_equal(_hmac(alg.get("hash"), key.get("raw"), data), signature)
    public = load_key(key)
    try:
        if name == "RSASSA-PKCS1-v1_5" and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, asym_padding.PKCS1v15(), _hash(alg.get("hash")))
        elif name == "RSA-PSS" and isinstance(public, rsa.RSAPublicKey):
            h = _hash(alg.get("hash"))
            salt = _int(alg.get("saltLength"), "saltLength", 0, 1 << 16)
            public.verify(signature, data, asym_padding.PSS(asym_padding.MGF1(h), salt), h)
        elif name == "ECDSA" and isinstance(public, ec.EllipticCurvePublicKey):
            size = _ec_size(public)
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            der = utils.encode_dss_signature(r, s)
            public.verify(der, data, ec.ECDSA(_hash(alg.get("hash"))))
        elif name == "Ed25519" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        else:
            raise CryptoError("InvalidAccessError", f"the key cannot verify with {name}")
    except (InvalidSignature, ValueError):
        return False
    return True


def hmac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    return std_hmac.compare_digest(a, b)


def _aes(alg: dict[str, Any], raw: Any, data: Any, encrypt: bool) -> bytes:
    name, key, data = alg.get("name"), _bytes(raw, "key"), _bytes(data, "data")
    if name == "AES-GCM":
        return _gcm(alg, key, data, encrypt)
    if name == "AES-CBC":
        iv = _bytes(alg.get("iv"), "iv")
        if len(iv) != 16:
            raise CryptoError("OperationError", "AES-CBC needs a 16-byte iv")
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
        if encrypt:
            padder = padding.PKCS7(128).padder()
            enc = cipher.encryptor()
            return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
        try:
            dec = cipher.decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()
        except ValueError:
            raise CryptoError("OperationError", "decryption failed") from None
    if name == "AES-CTR":
        counter = _bytes(alg.get("counter"), "counter")
        if len(counter) != 16:
            raise CryptoError("OperationError", "AES-CTR needs a 16-byte counter")
        ctx = Cipher(algorithms.AES(key), modes.CTR(counter))
        op = ctx.encryptor() if encrypt else ctx.decryptor()
        return op.update(data) + op.finalize()
    raise CryptoError("NotSupportedError", f"unsupported cipher {name}")


def _gcm(alg: dict[str, Any], key: bytes, data: bytes, encrypt: bool) -> bytes:
    iv = _bytes(alg.get("iv"), "iv")
    aad = _bytes(alg.get("additionalData", b""), "additionalData")
    tag_len = _int(alg.get("tagLength", 128), "tagLength", 32, 128) // 8
    if not iv:
        raise CryptoError("OperationError", "AES-GCM needs a non-empty iv")
    if encrypt:
        enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        enc.authenticate_additional_data(aad)
        out = enc.update(data) + enc.finalize()
        return out + enc.tag[:tag_len]
    if len(data) < tag_len:
        raise CryptoError("OperationError", "the data is shorter than the tag")
    body, tag = data[: len(data) - tag_len], data[len(data) - tag_len :]
    try:
        dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=tag_len)).decryptor()
        dec.authenticate_additional_data(aad)
        return dec.update(body) + dec.finalize()
    except (InvalidTag, ValueError):
        raise CryptoError("OperationError", "decryption failed") from None


def _oaep(alg: dict[str, Any], key: dict[str, Any], data: Any, encrypt: bool) -> bytes:
    h = _hash(alg.get("hash"))
    label = _bytes(alg.get("label", b""), "label") or None
    pad = asym_padding.OAEP(asym_padding.MGF1(h), h, label)
    k = load_key(key)
    try:
        if encrypt and isinstance(k, rsa.RSAPublicKey):
            return k.encrypt(_bytes(data, "data"), pad)
        if not encrypt and isinstance(k, rsa.RSAPrivateKey):
            return k.decrypt(_bytes(data, "data"), pad)
    except ValueError:
        raise CryptoError("OperationError", "RSA-OAEP failed") from None
    raise CryptoError("InvalidAccessError", "wrong key type for RSA-OAEP")


def encrypt(alg: dict[str, Any], key: dict[str, Any], data: Any) -> bytes:
    if alg.get("name") == "RSA-OAEP":
        return _oaep(alg, key, data, True)
    return _aes(alg, key.get("raw"), data, True)


def decrypt(alg: dict[str, Any], key: dict[str, Any], data: Any) -> bytes:
    if alg.get("name") == "RSA-OAEP":
        return _oaep(alg, key, data, False)
    return _aes(alg, key.get("raw"), data, False)


def derive_bits(alg: dict[str, Any], key: dict[str, Any], length: Any) -> bytes:
    """PBKDF2, HKDF or ECDH/X25519 bits (``length`` in bits, a multiple of 8 for the KDFs)."""
    name = alg.get("name")
    if name in ("ECDH", "X25519"):
        return _agree(alg, key, length)
    bits = _int(length, "length", 0, 1 << 20)
    if bits % 8 or bits == 0:
        raise CryptoError("OperationError", "length must be a positive multiple of 8")
    raw = _bytes(key.get("raw"), "key")
    if name == "PBKDF2":
        iterations = _int(alg.get("iterations"), "iterations", 0, MAX_ITERATIONS)
        if iterations == 0:
            raise CryptoError("OperationError", "iterations must be positive")
        salt = _bytes(alg.get("salt"), "salt")
        return PBKDF2HMAC(_hash(alg.get("hash")), bits // 8, salt, iterations).derive(raw)
    if name == "HKDF":
        salt, info = _bytes(alg.get("salt"), "salt"), _bytes(alg.get("info"), "info")
        try:
            return HKDF(_hash(alg.get("hash")), bits // 8, salt, info).derive(raw)
        except ValueError as exc:
            raise CryptoError("OperationError", str(exc)) from None
    raise CryptoError("NotSupportedError", f"cannot derive bits with {name}")


def _agree(alg: dict[str, Any], key: dict[str, Any], length: Any) -> bytes:
    private, public = load_key(key), load_key(alg.get("public") or {})
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
            public, ec.EllipticCurvePublicKey
        ):
            secret = private.exchange(ec.ECDH(), public)
        elif isinstance(private, x25519.X25519PrivateKey) and isinstance(
            public, x25519.X25519PublicKey
        ):
            secret = private.exchange(public)
        else:
            raise CryptoError("InvalidAccessError", "mismatched keys for key agreement")
    except ValueError as exc:
        raise CryptoError("OperationError", str(exc)) from None
    if length is None:
        return secret
    bits = _int(length, "length", 0, len(secret) * 8)
    out = bytearray(secret[: (bits + 7) // 8])
    if bits % 8:
        out[-1] &= (0xFF << (8 - bits % 8)) & 0xFF
    return bytes(out)


def random_bytes(length: Any) -> bytes:
    return os.urandom(_int(length, "length", 1, 1 << 16))


def generate_pair(alg: dict[str, Any]) -> dict[str, Any]:
    """A new key pair: ``{private, public}`` DER plus its parameters."""
    name = alg.get("name")
    private: Any
    if name in ("RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP"):
        exponent = int.from_bytes(_bytes(alg.get("publicExponent"), "publicExponent"), "big")
        bits = _int(alg.get("modulusLength"), "modulusLength", 256, MAX_RSA_BITS)
        if exponent not in (3, 65537):
            raise CryptoError("OperationError", "publicExponent must be 3 or 65537")
        private = rsa.generate_private_key(exponent, bits)
    elif name in ("ECDSA", "ECDH"):
        private = ec.generate_private_key(_curve(alg.get("namedCurve")))
    elif name == "Ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif name == "X25519":
        private = x25519.X25519PrivateKey.generate()
    else:
        raise CryptoError("NotSupportedError", f"cannot generate {name} key pairs")
    return {
        "private": keyformats.private_der(private),
        "public": keyformats.public_der(private.public_key()),
        "info": keyformats.key_info(private),
    }
