"""The exception tree of the platform.

::

    EdgeError                      root; message is shown to the user as is
    ├── ManifestError              edge.toml or function code is invalid (push rejected)
    ├── ConfigError                an EDGE_* setting is invalid
    ├── AuthError                  missing token (401)
    │   └── ForbiddenError         token lacks access to that app (403)
    ├── NotFoundError              unknown app, environment, release (404)
    ├── ConflictError              the request conflicts with current state (409)
    ├── UnavailableError           a service the answer needs (Redis) is down (503)
    └── TooManyRequestsError       a cap on concurrent use is reached (429, Retry-After)

The control plane translates these to HTTP in exactly one place
(``edge.platform.api``). Function faults are not exceptions: the runtime's
pools answer them as 5xx outcomes (``edge.runtime.python.pool``, ``edge.runtime.js.pool``).
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error the platform raises on purpose."""

    http_status = 400


class ManifestError(EdgeError):
    """edge.toml or a function's code failed validation.

    Attributes:
        problems: one line per problem, each naming the file, the key path,
            the value and the rule broken.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ConfigError(EdgeError):
    """An EDGE_* environment setting is invalid."""


class AuthError(EdgeError):
    """No valid API token was presented."""

    http_status = 401


class ForbiddenError(AuthError):
    """The token is valid but not allowed to act on this app."""

    http_status = 403


class NotFoundError(EdgeError):
    """An app, environment or release does not exist."""

    http_status = 404


class ConflictError(EdgeError):
    """The request conflicts with the current state."""

    http_status = 409


class UnavailableError(EdgeError):
    """A service the answer needs (Redis) is unreachable; retrying later may work."""

    http_status = 503


class TooManyRequestsError(EdgeError):
    """A cap on concurrent use (e.g. log follow streams) is reached.

    Attributes:
        retry_after: seconds after which trying again may succeed.
    """

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
