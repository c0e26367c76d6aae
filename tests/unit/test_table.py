"""The runtime's route table, built from a routing snapshot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edge.config import Config
from edge.runtime.table import RouteTable
from edge.snapshot import FunctionRecord, LiveEnvironment, RoutingSnapshot


def record(name: str, *routes: str) -> FunctionRecord:
    return FunctionRecord(
        name, "python", f"{name}.py", f"{name}.py", "handle", 128, 1000, ["us-east"], {}, 0, 8,
        f"hash-{name}", routes,
    )  # fmt: skip


def environment(app: str, release_id: int, *functions: FunctionRecord) -> LiveEnvironment:
    return LiveEnvironment(app, "production", release_id, release_id, "artifact", functions)


def test_sites_whose_release_did_not_change_are_taken_over(tmp_path: Path) -> None:
    config = Config.from_env({"EDGE_HOME": str(tmp_path)})
    shop = environment("shop", 1, record("users", "/users/:id"))
    blog = environment("blog", 7, record("posts", "/posts/*"))
    first = RouteTable.build(RoutingSnapshot(1, (shop, blog)), config)

    new_blog = replace(blog, release_id=8, version=8, functions=(record("feed", "/feed"),))
    second = RouteTable.build(RoutingSnapshot(2, (shop, new_blog)), config, first)

    shop_host, blog_host = "shop.edge.localhost", "blog.edge.localhost"
    assert second.site(shop_host) is first.site(shop_host)  # same release: not rebuilt
    new_site = second.site(blog_host)
    assert new_site is not None and new_site is not first.site(blog_host)
    assert new_site.router.match("GET", "/feed") is not None
    assert new_site.router.match("GET", "/posts/a") is None
    assert second.version == 2
