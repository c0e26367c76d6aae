"""Edge: a self-hosted, git-push edge-function platform.

Function code imports only this package's public names::

    from edge import Response

Importing ``edge`` stays cheap (no web framework, database or Redis imports),
because every Python function template imports it.
"""

from edge.function import Request, Response

__all__ = ["Request", "Response"]
