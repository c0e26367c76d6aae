"""Release artifacts: a release's files as a content-addressed, read-only folder.

``$EDGE_HOME/releases/<app>/<sha256>/`` holds the files; ``<sha256>.tar`` beside
it is the deterministic bundle that remote runtime nodes fetch and verify. The
digest is the sha256 of that tar, so two commits of an app with the same files
share one artifact. Artifacts are per app (not shared across apps even when
identical) because each app's folder is readable by that app's group only.
The control plane exports them (:meth:`Artifacts.export`); runtime nodes on
other hosts install fetched bundles the same way (:meth:`Artifacts.install`).

APPSEC: artifacts are written read-only (no function can change its own code);
when the platform runs as root they are owned by root with the app's group and
no access for others, so one app's functions cannot read another app's code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.uids import FUNCTION_ID_BASE, function_ids


@dataclass(frozen=True)
class SourceFile:
    """One regular file of a release: relative POSIX path, mode bit, and how to read it.

    The bytes are read on demand and not kept, so a release's files are never
    all in memory at once (a release may be up to EDGE_MAX_RELEASE_MB).
    """

    path: str
    executable: bool
    reader: Callable[[], bytes] = field(compare=False, repr=False)

    @property
    def data(self) -> bytes:
        return self.reader()

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _write_bundle(files: list[SourceFile], target: Path) -> str:
    """Write a deterministic tar of the files to ``target``, one file in memory at a
    time; returns its sha256."""
    with tarfile.open(target, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in files:
            data = file.data
            info = tarfile.TarInfo(file.path)
            info.size = len(data)
            info.mode = 0o555 if file.executable else 0o444
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256()
    with open(target, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Artifacts:
    """The folder of release artifacts on one host.

    Args:
        root: ``$EDGE_HOME/releases``.
        uid_base: the install's block of function uids (:mod:`edge.uids`).
    """

    def __init__(self, root: Path, uid_base: int = FUNCTION_ID_BASE) -> None:
        self.root = root
        self.uid_base = uid_base

    def path(self, app: str, digest: str) -> Path:
        return self.root / app / digest

    def bundle_path(self, app: str, digest: str) -> Path:
        return self.root / app / f"{digest}.tar"

    def digests(self, app: str) -> set[str]:
        """The digests of the artifacts of ``app`` on this host (folders or bundles)."""
        folder = self.root / app
        if not folder.is_dir():
            return set()
        return {
            entry.name.removesuffix(".tar")
            for entry in folder.iterdir()
            if not entry.name.startswith(".")
        }

    def remove(self, app: str, digest: str) -> None:
        """Delete an artifact (its folder and bundle); a missing one is fine.

        The folder is first renamed aside, so it disappears at once, then made
        writable again (it was sealed read-only) and deleted.
        """
        bundle = self.bundle_path(app, digest)
        bundle.unlink(missing_ok=True)
        target = self.path(app, digest)
        if not target.is_dir():
            return
        trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=target.parent))
        target.rename(trash / digest)
        for dirpath, _dirnames, _filenames in os.walk(trash):
            os.chmod(dirpath, 0o700)
        shutil.rmtree(trash)

    def export(self, files: list[SourceFile], app: str, app_id: int = 0) -> str:
        """Export a release's files; returns the bundle's digest. Idempotent."""
        folder = self._app_folder(app, app_id)
        fd, name = tempfile.mkstemp(prefix=".bundle-", dir=folder)
        os.close(fd)
        staged = Path(name)
        try:
            digest = _write_bundle(files, staged)
            bundle = self.bundle_path(app, digest)
            if not bundle.exists():
                staged.chmod(0o600)
                staged.rename(bundle)
        finally:
            staged.unlink(missing_ok=True)
        self._unpack(app, digest, app_id)
        return digest

    def install(self, digest: str, data: bytes, app: str, app_id: int = 0) -> Path:
        """Unpack a verified bundle as ``<digest>/`` (used by remote nodes too)."""
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"bundle does not match its digest {digest}")
        self._app_folder(app, app_id)
        bundle = self.bundle_path(app, digest)
        if not bundle.exists():
            # Written aside and renamed: another worker of this node installing the
            # same bundle at once must never read it half-written.
            fd, name = tempfile.mkstemp(prefix=".bundle-", dir=bundle.parent)
            with os.fdopen(fd, "wb") as aside:
                aside.write(data)
            os.replace(name, bundle)
        return self._unpack(app, digest, app_id)

    def _app_folder(self, app: str, app_id: int) -> Path:
        folder = self.root / app
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # noqa: S103 - traversable, not listable: apps reach only their own
        if os.geteuid() == 0:
            # APPSEC: other apps cannot even list this app's releases.
            os.chown(folder, 0, self._gid(app, app_id))
            os.chmod(folder, 0o750)  # noqa: S103 - root:app-group, nothing for others
        return folder

    def _gid(self, app: str, app_id: int) -> int:
        return function_ids(app, app_id, self.uid_base)[1] if os.geteuid() == 0 else -1

    def _unpack(self, app: str, digest: str, app_id: int) -> Path:
        """Extract ``<digest>.tar`` (streamed from disk) into the sealed ``<digest>/``."""
        target = self.path(app, digest)
        if target.is_dir():
            return target
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            with tarfile.open(self.bundle_path(app, digest)) as tar:
                tar.extractall(staging, filter="data")
            _seal(staging, self._gid(app, app_id))
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # a concurrent export won the race: fine
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target


def _seal(folder: Path, gid: int) -> None:
    """Make an unpacked artifact read-only, readable only by its app when root."""
    as_root = os.geteuid() == 0
    # APPSEC: owner root (or the platform user), group = the app's group, no
    # write bits anywhere, nothing for others when uid separation is possible.
    other = 0 if as_root else 0o5
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            executable = os.stat(path).st_mode & 0o100
            if as_root:
                os.chown(path, 0, gid)
            mode = 0o550 if executable else 0o440
            os.chmod(path, mode | (other if executable else other & 0o4))
        for name in dirnames:
            _seal_dir(os.path.join(dirpath, name), gid, as_root, other)
    _seal_dir(str(folder), gid, as_root, other)


def _seal_dir(path: str, gid: int, as_root: bool, other: int) -> None:
    if as_root:
        os.chown(path, 0, gid)
    os.chmod(path, 0o550 | other)  # noqa: S103 - read-only code, see _seal
