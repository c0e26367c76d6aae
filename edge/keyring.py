"""The platform's key: it seals app secrets at rest and signs runtime acknowledgements.

One master key per platform, from ``EDGE_SECRET_KEY`` (shared by several
control-plane hosts and by runtime nodes on other hosts) or else
``$EDGE_HOME/secret.key`` (created with mode 0600 on first use). Two keys are
derived from it with HKDF, so that one use never weakens the other:

- sealing: AES-256-GCM with a fresh 96-bit nonce per value, and the secret's
  place (``app/environment/NAME``) as associated data, so a ciphertext copied
  into another app's row does not open;
- signing: HMAC-SHA256 over what runtime workers report (see ``edge.commands``).

``EDGE_SECRET_KEY`` may list several keys, comma-separated, to rotate: the first
seals and signs, every one opens and verifies.

APPSEC: function processes never hold the key. Their environment is scrubbed
(no ``EDGE_*``), and when the platform runs as root they run under their own
uid, which can read neither ``secret.key`` (0600, root) nor a worker's
``/proc/<pid>/environ``. Without root they run as the platform user and are not
kept from the key: the README says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.config import Config
from edge.errors import ConfigError, EdgeError

logger = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_PREFIX = "v1."
KEY_FILE = "secret.key"
MAKE_KEY = 'python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'


class SecretKeyError(EdgeError):
    """A sealed value does not open with this host's key (or is not a sealed value)."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(master)


def decode_key(text: str, origin: str) -> bytes:
    """The 32 bytes of a base64url key, or a :class:`ConfigError` naming ``origin``."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"{origin}: not a key: expected {KEY_BYTES} random bytes in base64url "
            f"(44 characters, like $EDGE_HOME/{KEY_FILE}); make one with: {MAKE_KEY}"
        )
    return raw


def new_key() -> str:
    """A fresh master key, as text (what ``secret.key`` and ``EDGE_SECRET_KEY`` hold)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def key_file(home: Path) -> str:
    """The text of ``home/secret.key``, created (0600, atomically) if it is missing.

    Two processes starting together on one home agree on one key: the file is
    written under a temporary name and linked into place, which fails if the
    other process linked first; then its key is read.
    """
    path = home / KEY_FILE
    if path.exists():
        return path.read_text()
    home.mkdir(parents=True, exist_ok=True)
    temp = home / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(new_key() + "\n")
    try:
        os.link(temp, path)
        logger.warning(
            "created a new platform key in %s: runtime nodes and control planes on other "
            "hosts need the same key in EDGE_SECRET_KEY",
            path,
        )
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return path.read_text()


class Keyring:
    """Seals and opens secrets, signs and verifies acknowledgements.

    Args:
        masters: the master keys, the current one first.
    """

    def __init__(self, masters: list[bytes]) -> None:
        if not masters:
            raise ConfigError(f"no platform key: set EDGE_SECRET_KEY ({MAKE_KEY})")
        self._seal = [AESGCM(_derive(m, b"edge secrets v1")) for m in masters]
        self._sign = [_derive(m, b"edge acks v1") for m in masters]
        self._fingerprint = _derive(masters[0], b"edge secret fingerprint v1")

    @classmethod
    def from_config(cls, config: Config) -> Keyring:
        """The keyring of ``EDGE_SECRET_KEY``, else of ``$EDGE_HOME/secret.key`` (created).

        Raises:
            ConfigError: a key is malformed.
        """
        if config.secret_key:
            parts = [p for p in config.secret_key.split(",") if p.strip()]
            return cls([decode_key(p, "EDGE_SECRET_KEY") for p in parts])
        text = key_file(config.home)
        return cls([decode_key(text, str(config.home / KEY_FILE))])

    # -- secrets at rest -------------------------------------------------------

    def seal(self, place: str, value: str) -> str:
        """``value`` encrypted for ``place`` (``app/environment/NAME``), as text."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._seal[0].encrypt(nonce, value.encode("utf-8"), place.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, place: str, sealed: str) -> str:
        """The plain value of a :meth:`seal` result for the same ``place``.

        Raises:
            SecretKeyError: no key of this host opens it.
        """
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(SEALED_PREFIX).encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        for box in self._seal:
            try:
                return box.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], place.encode()).decode()
            except (InvalidTag, ValueError):
                continue
        raise SecretKeyError(
            f"secret {place} does not decrypt with this host's key: give every control "
            f"plane and runtime node the same key (EDGE_SECRET_KEY, or the control plane's "
            f"$EDGE_HOME/{KEY_FILE}), or set the secret again"
        )

    def fingerprint(self, values: Mapping[str, str]) -> str:
        """A keyed digest of a set of secrets: equal sets, equal digests; reveals nothing."""
        text = json.dumps(sorted(values.items()), separators=(",", ":"))
        return hmac.new(self._fingerprint, text.encode(), hashlib.sha256).hexdigest()

    # -- acknowledgements ------------------------------------------------------

    def sign(self, data: bytes) -> str:
        """An HMAC-SHA256 signature of ``data`` (hex)."""
        return hmac.new(self._sign[0], data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, signature: str) -> bool:
        """Whether ``signature`` is :meth:`sign` of ``data`` under any of our keys."""
        return any(
            hmac.compare_digest(hmac.new(key, data, hashlib.sha256).hexdigest(), signature)
            for key in self._sign
        )
