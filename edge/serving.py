"""Running gunicorn in-process for ``edge platform`` and ``edge runtime``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class GunicornServer(BaseApplication):
    """A gunicorn master whose workers each call ``load_app()`` after forking.

    Nothing is preloaded: every worker builds its own engines and clients, so
    no connection or thread crosses a fork.
    """

    def __init__(self, load_app: Callable[[], Any], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load_app()


def serve(load_app: Callable[[], Any], options: dict[str, Any]) -> None:
    """Run gunicorn in the foreground until SIGTERM/SIGINT."""
    GunicornServer(load_app, options).run()
