"""A local git working copy driven with the real git client."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_IDENTITY = ("-c", "user.name=Edge Bench", "-c", "user.email=bench@edge.localhost")


class Workdir:
    """A repository at ``path`` with one branch, ``main``.

    Args:
        path: the folder (created if missing).
        wrapper: an argv prefix git runs under (e.g. ``ip netns exec NS``).
    """

    def __init__(self, path: Path, wrapper: tuple[str, ...] = ()) -> None:
        self.path = path
        self.wrapper = wrapper
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``git args...`` here.

        Raises:
            RuntimeError: git failed; its output is in the message.
        """
        result = subprocess.run(
            [*self.wrapper, "git", *GIT_IDENTITY, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"git {args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def commit(self, message: str, files: dict[str, str]) -> None:
        """Write ``files`` (relative path -> text) and commit everything."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def push(self, remote: str) -> None:
        """``git push remote main`` (the platform answers once the release is live)."""
        self.git("push", "-q", remote, "main")
