"""Python package environments: one read-only folder per (requirements, Python, platform).

An app's ``requirements.txt`` (beside ``edge.toml``) is installed with ``uv`` into
``$EDGE_HOME/envs/<digest>/``, where the digest covers the file's bytes, the
interpreter that runs functions and its platform tag. An unchanged file maps to
the same folder, so a code-only push reuses it and installs nothing.

The folder is a ``uv pip install --target`` folder, not a venv: a function
process is forked from the platform's interpreter, never started from the
environment's, so a venv's interpreter, ``pyvenv.cfg`` and activation scripts
would be dead weight. A template only puts the folder on ``sys.path`` (with
``site.addsitedir``, so ``.pth`` files work).

Shared by the control plane (which builds at push) and runtime nodes on other
hosts (which build what they lack from the release's own ``requirements.txt``
and check they reach the same digest). Used in blocking code only.

APPSEC: wheels only (``--only-binary :all:``): installing runs no package code
as the platform user; a package's code runs only inside the function sandbox.
Requirement lines may not carry pip options, paths or URLs, so a push cannot
point the installer at the platform's own files, other indexes or any address.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ManifestError

REQUIREMENTS = "requirements.txt"
MAX_REQUIREMENTS_BYTES = 64 * 1024
_FORMAT = b"edge-env-1"
# A requirement that is a path or URL rather than a name: ./x, /x, ~/x, C:\x,
# file:, https://..., git+ssh://..., or "name @ <url>" (a direct reference).
_DIRECT = re.compile(r"^[./~\\]|^[a-zA-Z]:|://|\bfile:|@")
# Per-requirement options pip and uv accept after a name: only hashes.
_OPTION = re.compile(r"\s--hash[= ]\S+")
_UV_ENV_KEYS = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)

# uv's tree drawing around its messages (kept out of the one-line summary).
_DECORATION = " \u2570\u2500\u25b6\u00d7"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """Where packages come from and how big and slow an install may be.

    Attributes:
        index_url: ``EDGE_PYTHON_INDEX_URL``; ``""`` keeps uv's default,
            ``"none"`` means no index (find-links only).
        find_links: ``EDGE_PYTHON_FIND_LINKS``: a folder or URL of wheels, or ``""``.
        max_mb: ``EDGE_MAX_ENV_MB``: the largest installed environment.
        timeout_s: ``EDGE_ENV_INSTALL_TIMEOUT``: the longest install.
    """

    index_url: str = ""
    find_links: str = ""
    max_mb: int = 2048
    timeout_s: float = 600.0


@functools.cache
def interpreter_tag() -> str:
    """The Python version and platform tag an environment is built for (this interpreter)."""
    # The running libc, as the C library reports it (platform.libc_ver() guesses from files).
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or "libc"
    except (ValueError, OSError):
        libc = "libc"
    return (
        f"{sys.implementation.name}-{'.'.join(map(str, sys.version_info[:3]))}-"
        f"{sysconfig.get_platform()}-{libc}"
    )


def env_digest(requirements: bytes) -> str:
    """The content address of the environment of ``requirements`` on this interpreter."""
    digest = hashlib.sha256(_FORMAT + b"\0" + interpreter_tag().encode() + b"\0")
    digest.update(requirements)
    return digest.hexdigest()


def check_requirements(text: bytes) -> list[str]:
    """Problems with a ``requirements.txt`` before anything is installed."""
    if len(text) > MAX_REQUIREMENTS_BYTES:
        return [f"{REQUIREMENTS}: larger than {MAX_REQUIREMENTS_BYTES // 1024} KiB"]
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"{REQUIREMENTS}: not UTF-8 text"]
    problems = []
    for number, raw in enumerate(lines, 1):
        line = _OPTION.sub("", raw.split(" #", 1)[0]).strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(";", 1)[0]  # what follows ";" is an environment marker
        if line.startswith("-") or " -" in name:
            problems.append(
                f"{REQUIREMENTS}:{number}: {line[:60]!r}: options are not allowed here; "
                "list packages (e.g. flask==3.1.0); the operator sets indexes with "
                "EDGE_PYTHON_INDEX_URL and EDGE_PYTHON_FIND_LINKS"
            )
        elif _DIRECT.search(name):
            problems.append(
                f"{REQUIREMENTS}:{number}: {line[:60]!r}: paths and URLs are not allowed; "
                "name a package from the index, or publish it as a wheel to the "
                "EDGE_PYTHON_FIND_LINKS folder"
            )
    return problems


class Environments:
    """The environments under one folder (``$EDGE_HOME/envs``).

    Args:
        root: the folder.
        settings: index and limits.
        cache: uv's cache folder (wheels are kept there across builds).
    """

    def __init__(self, root: Path, settings: Settings, cache: Path) -> None:
        self.root = root
        self.settings = settings
        self.cache = cache

    def path(self, digest: str) -> Path:
        return self.root / digest

    def digests(self) -> set[str]:
        """The environments on this host."""
        if not self.root.is_dir():
            return set()
        return {entry.name for entry in self.root.iterdir() if not entry.name.startswith(".")}

    def idle_seconds(self, digest: str) -> float:
        """Seconds since a push last built or reused the environment."""
        return time.time() - os.stat(self.path(digest)).st_mtime

    def remove(self, digest: str) -> None:
        """Delete an environment: renamed aside first (gone at once), then deleted."""
        target = self.path(digest)
        if not target.is_dir():
            return
        trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
        target.rename(trash / digest)
        for dirpath, _dirs, _files in os.walk(trash):
            os.chmod(dirpath, 0o700)  # sealed read-only: make the folders writable to empty them
        shutil.rmtree(trash, ignore_errors=True)
        (self.root / f".{digest}.lock").unlink(missing_ok=True)

    def ensure(self, requirements: bytes, progress: Progress) -> str:
        """The digest of the environment of ``requirements``, built if missing.

        Raises:
            ManifestError: the file is invalid, does not resolve, does not
                install, or the result is too big or took too long (uv's own
                message is kept, so it names the package).
        """
        problems = check_requirements(requirements)
        if problems:
            raise ManifestError(problems)
        digest = env_digest(requirements)
        if self.path(digest).is_dir():
            progress(f"-----> Python packages: reusing environment {digest[:12]}")
            os.utime(self.path(digest))  # in use: see idle_seconds()
            return digest
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # noqa: S103 - traversable, not listable, like releases/
        lock = self.root / f".{digest}.lock"
        with open(lock, "w") as handle:
            import fcntl  # noqa: PLC0415 - only builders lock

            fcntl.flock(handle, fcntl.LOCK_EX)
            if not self.path(digest).is_dir():  # another push may have built it meanwhile
                self._build(requirements, digest, progress)
            else:
                progress(f"-----> Python packages: reusing environment {digest[:12]}")
        return digest

    def _build(self, requirements: bytes, digest: str, progress: Progress) -> None:
        progress(f"-----> Python packages: installing {REQUIREMENTS} with uv")
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            (work / "requirements.in").write_bytes(requirements)
            target = work / "env"
            self._run_uv(work / "requirements.in", target, progress)
            size_mb = _size(target) / (1024 * 1024)
            if size_mb > self.settings.max_mb:
                raise ManifestError(
                    [
                        f"{REQUIREMENTS}: the installed packages take {size_mb:.0f} MB, over "
                        f"the limit of {self.settings.max_mb} MB (EDGE_MAX_ENV_MB); "
                        "drop or slim some requirements"
                    ]
                )
            _seal(target)
            os.rename(target, self.path(digest))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(
            f"-----> Python packages: environment {digest[:12]} ready "
            f"({size_mb:.1f} MB, {time.monotonic() - started:.1f} s)"
        )

    def _run_uv(self, requirements: Path, target: Path, progress: Progress) -> None:
        command = [*self.uv_command(), "-r", str(requirements), "--target", str(target)]
        env = {key: os.environ[key] for key in _UV_ENV_KEYS if key in os.environ}
        env |= {"UV_CACHE_DIR": str(self.cache), "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
        output: list[str] = []
        with subprocess.Popen(  # fixed argv, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(target.parent),
        ) as proc:
            timer = threading.Timer(self.settings.timeout_s, proc.kill)
            timer.start()
            try:
                assert proc.stdout is not None
                for raw in proc.stdout:
                    line = raw.decode("utf-8", "replace").rstrip()
                    output.append(line)
                    if line.strip():
                        progress(f"       {line}")
                code = proc.wait()
            finally:
                timer.cancel()
        if code != 0:
            raise ManifestError([self._failure(output, code)])

    def _failure(self, output: list[str], code: int) -> str:
        if code < 0:
            return (
                f"{REQUIREMENTS}: installing took longer than "
                f"{self.settings.timeout_s:g} s (EDGE_ENV_INSTALL_TIMEOUT)"
            )
        return f"{REQUIREMENTS}: {uv_message(output)}"

    def uv_command(self) -> list[str]:
        """``uv pip install`` with this platform's interpreter, index and rules."""
        import uv  # noqa: PLC0415 - the uv binary ships in this PyPI package

        command = [
            uv.find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--python",
            sys.executable,
            "--only-binary",
            ":all:",
            "--link-mode",
            "copy",
            # Functions import with sys.dont_write_bytecode: without .pyc files
            # every template would compile numpy & co. from source again.
            "--compile-bytecode",
            "--color",
            "never",
        ]
        if self.settings.index_url == "none":
            command.append("--no-index")
        elif self.settings.index_url:
            command += ["--index-url", self.settings.index_url]
        if self.settings.find_links:
            command += ["--find-links", self.settings.find_links]
        return command


def uv_message(output: list[str]) -> str:
    """uv's error, as one line: ``No solution found ...: Because ...``."""
    lines = [line.strip() for line in output if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        return " ".join(lines[-3:])[:1000] or "uv failed"
    parts = [lines[start].removeprefix("error:").strip()]
    for line in lines[start + 1 :]:
        parts.append(line.removeprefix("cause:").removeprefix("Caused by:").strip(_DECORATION))
    return ": ".join(part for part in parts if part)[:1000]


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _seal(folder: Path) -> None:
    """Read-only for everyone, readable by every function uid.

    APPSEC: environments hold packages from the operator's indexes, shared by
    every app whose requirements are byte-identical; nobody may write them
    (a function could otherwise plant code in another app's imports). The
    ``envs/`` folder is not listable, so reaching one takes its digest.
    """
    for dirpath, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o555 if mode & 0o111 else 0o444)
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o555)  # noqa: S103 - read-only, see above
    os.chmod(folder, 0o555)  # noqa: S103
