"""The control-plane WSGI application: git at ``/git/``, the API everywhere else."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from edge.platform.api import create_api
from edge.platform.gitserver import GitServer
from edge.platform.services import Platform


def create_app(platform: Platform) -> Callable[..., Iterable[bytes]]:
    """Mount dulwich's git app (via :class:`GitServer`) beside the falcon API."""
    api = create_api(platform)
    git = GitServer(
        platform.repos,
        platform.deployer,
        platform.store.authenticate,
        platform.config.max_push_bytes,
        platform.config.max_file_bytes,
    )

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/git/"):
            return git(environ, start_response)
        return api(environ, start_response)

    return application
