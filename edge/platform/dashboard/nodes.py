"""The Nodes page: the runtime nodes, their regions and health (admins only)."""

from __future__ import annotations

import falcon

from edge.errors import ForbiddenError
from edge.nodes import list_nodes
from edge.platform.dashboard.web import Web


class NodesPage:
    """``/nodes``: what ``edge nodes`` and ``GET /v1/nodes`` list, as a page."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        viewer = self.web.require(req)
        if not viewer.identity.admin:
            raise ForbiddenError("the node list is for operators: sign in with an admin token")
        platform = self.web.platform
        nodes = list_nodes(platform.redis, platform.deployer.keyring)
        self.web.render(resp, "nodes.html", viewer=viewer, title="Nodes", nodes=nodes)
