"""The ``edge`` command."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.apiclient import ClientError, api, stream, token
from edge.config import Config
from edge.errors import EdgeError
from edge.kvcli import add_kv_commands

if TYPE_CHECKING:
    from edge.snapshot import RoutingSource


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_up(config: Config, args: argparse.Namespace) -> int:
    from edge import up  # noqa: PLC0415 - keep `edge --help` fast

    return up.run(config, demo=args.demo)


def cmd_dev(config: Config, args: argparse.Namespace) -> int:
    from edge import dev  # noqa: PLC0415

    return dev.run(config, Path(args.folder), args.app)


def cmd_platform(config: Config, args: argparse.Namespace) -> int:
    from edge.platform import server  # noqa: PLC0415

    server.run(config)
    return 0


def cmd_runtime(config: Config, args: argparse.Namespace) -> int:
    from edge.runtime import server  # noqa: PLC0415

    server.run(config, routing_source)
    return 0


def routing_source(config: Config) -> RoutingSource:
    """What a runtime worker serves: the control plane's store (read-only use)."""
    from edge.platform.store import Store  # noqa: PLC0415 - in each worker, after the fork

    return Store.from_url(config.database_url)


def cmd_token(config: Config, args: argparse.Namespace) -> int:
    from edge.platform.store import Store  # noqa: PLC0415

    if not args.admin and not args.app:
        raise ClientError("say what the token may do: --admin, or --app APP (repeatable)")
    store = Store.from_url(config.database_url)
    try:
        store.migrate()
        name = args.name or ("admin" if args.admin else ",".join(args.app))
        print(store.create_token(name, admin=args.admin, apps=tuple(args.app or ())))
    finally:
        store.close()
    return 0


def cmd_token_list(config: Config, args: argparse.Namespace) -> int:
    from edge.platform.store import Store  # noqa: PLC0415

    store = Store.from_url(config.database_url)
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    rows = [
        {"id": t.id, "name": t.name, "scope": "admin" if t.admin else ", ".join(sorted(t.apps))}
        for t in tokens
    ]
    print(json.dumps(rows, indent=2) if args.json else table(rows, ["id", "name", "scope"]))
    return 0


def cmd_token_revoke(config: Config, args: argparse.Namespace) -> int:
    from edge.platform.store import Store  # noqa: PLC0415

    store = Store.from_url(config.database_url)
    try:
        store.revoke_token(args.id)
    finally:
        store.close()
    print(f"token #{args.id} revoked")
    return 0


def cmd_remote(config: Config, args: argparse.Namespace) -> int:
    url = config.platform_url.replace("://", f"://x:{token(config)}@")
    print(f"git remote add edge {url}/git/{args.app}.git")
    return 0


def cmd_apps(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", "/v1/apps")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        {
            "app": a["name"],
            "environments": ", ".join(
                f"{e['name']}@v{e.get('active_version') or '-'}" for e in a.get("environments", [])
            ),
        }
        for a in data["apps"]
    ]
    print(table(rows, ["app", "environments"]))
    return 0


def cmd_nodes(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", "/v1/nodes")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        {**n, "routes": f"v{n['version']}", "heartbeat": f"{n['seconds_since_heartbeat']}s ago"}
        for n in data["nodes"]
    ]
    print(table(rows, ["node", "region", "url", "health", "workers", "routes", "heartbeat"]))
    return 0


def cmd_releases(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", f"/v1/apps/{args.app}/releases?env={args.env}")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = []
    for r in data["releases"]:
        note = f"rollback to v{r['rollback_of']}" if r.get("rollback_of") else r.get("message", "")
        rows.append(
            {
                "version": f"v{r['version']}",
                "status": r["status"],
                "commit": (r.get("commit_sha") or "")[:7],
                "author": r.get("author", ""),
                "created": str(r.get("created_at", ""))[:19],
                "functions": ", ".join(f["name"] for f in r.get("functions", [])),
                "message": note,
            }
        )
    print(table(rows, ["version", "status", "commit", "created", "author", "functions", "message"]))
    return 0


def cmd_rollback(config: Config, args: argparse.Namespace) -> int:
    body = {} if args.to is None else {"to": args.to}
    data = api(config, "POST", f"/v1/apps/{args.app}/rollback", body)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for line in data.get("progress", []):
        print(line)
    return 0


def cmd_logs(config: Config, args: argparse.Namespace) -> int:
    from edge.logstream import format_record  # noqa: PLC0415

    query = {
        "function": args.function,
        "since": args.since,
        "env": args.env,
        "limit": args.limit,
        "follow": "1" if args.follow else None,
    }
    path = f"/v1/apps/{args.app}/logs?" + urllib.parse.urlencode(
        {k: v for k, v in query.items() if v is not None}
    )
    show = json.dumps if args.json else format_record
    if not args.follow:
        for record in api(config, "GET", path)["records"]:
            print(show(record))
        return 0
    try:
        for record in stream(config, path):
            print(show(record), flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


def cmd_metrics(config: Config, args: argparse.Namespace) -> int:
    suffix = f"?env={urllib.parse.quote(args.env)}" if args.env else ""
    data = api(config, "GET", f"/v1/apps/{args.app}/metrics{suffix}")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        {
            "function": r["function"],
            "env": r["environment"],
            "invocations": r["invocations"],
            "errors": r["errors"],
            "cold": r["cold_starts"],
            "warm hit": f"{r['warm_hit_ratio'] * 100:.1f}%",
            "avg ms": r["avg_ms"],
            "p50 ms": r["p50_ms"],
            "p95 ms": r["p95_ms"],
            "p99 ms": r["p99_ms"],
            "mem peak MB": f"{r['memory_peak_kb'] / 1024:.1f}",
            "timeouts": r["timeouts"],
            "mem kills": r["memory_kills"],
        }
        for r in data["functions"]
    ]
    columns = [
        "function",
        "env",
        "invocations",
        "errors",
        "cold",
        "warm hit",
        "avg ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "mem peak MB",
        "timeouts",
        "mem kills",
    ]
    print(table(rows, columns) if rows else f"no invocations of {args.app} yet")
    return 0


def _secrets_path(args: argparse.Namespace, name: str = "") -> str:
    suffix = f"/{urllib.parse.quote(name, safe='')}" if name else ""
    query = urllib.parse.urlencode({"env": args.env})
    return f"/v1/apps/{urllib.parse.quote(args.app, safe='')}/secrets{suffix}?{query}"


def read_secret_value(name: str) -> str:
    """The value from stdin (a prompt without echo on a terminal), never from argv.

    APPSEC: argv is visible to every user in ``ps`` and lands in shell history.
    """
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not echoed): ")
    else:
        value = sys.stdin.read()
        # `echo value | edge secrets set` adds one newline that is not part of it.
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value:
        raise ClientError(
            f"no value for {name} on stdin: pipe it in, e.g. "
            f'`printf %s "$VALUE" | edge secrets set APP {name}`'
        )
    return value


def cmd_secrets_set(config: Config, args: argparse.Namespace) -> int:
    value = read_secret_value(args.name)
    data = api(config, "PUT", _secrets_path(args, args.name), {"value": value})
    return _print_change(data, args)


def cmd_secrets_unset(config: Config, args: argparse.Namespace) -> int:
    return _print_change(api(config, "DELETE", _secrets_path(args, args.name)), args)


def _print_change(data: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for line in data.get("progress", []):
        print(line)
    release = data.get("release")
    return 1 if release and release.get("status") == "failed" else 0


def cmd_secrets_list(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", _secrets_path(args))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [
        {"name": s["name"], "updated": str(s["updated_at"])[:19], "by": s["updated_by"]}
        for s in data["secrets"]
    ]
    empty = f"no secrets for {args.app} ({data['environment']})"
    print(table(rows, ["name", "updated", "by"]) if rows else empty)
    return 0


def cmd_init(config: Config, args: argparse.Namespace) -> int:
    from edge.platform.repos import check_app_name  # noqa: PLC0415

    folder = Path(args.folder)
    manifest = folder / "edge.toml"
    if manifest.exists():
        raise ClientError(f"{manifest} already exists")
    name = args.app or folder.resolve().name
    try:
        app = check_app_name(name)
    except EdgeError as exc:
        raise ClientError(f"{exc}; pick one with --app") from None
    (folder / "functions").mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        f'app = "{app}"\n\n[functions.hello]\nentry = "functions/hello.py"\n'
        'routes = ["/", "/hello/:name"]\n'
    )
    (folder / "functions" / "hello.py").write_text(
        'def handle(request):\n    return {"hello": request.params.get("name", "world")}\n'
    )
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text(".edge/\n__pycache__/\n")  # edge dev's local state stays out of git
    print(
        f"created {manifest} and functions/hello.py; try it with `edge dev`, then "
        f"`edge remote {app}`, git add, commit and `git push edge main`"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge", description="A git-push edge-function platform.")
    sub = p.add_subparsers(dest="command", required=True)
    _server_commands(sub)
    _app_commands(sub)
    _secrets_commands(sub)
    add_kv_commands(sub)
    _observe_commands(sub)
    return p


Subparsers = Any  # argparse's _SubParsersAction is private


def _server_commands(sub: Subparsers) -> None:
    up = sub.add_parser("up", help="run everything on this machine (Ctrl-C stops)")
    up.add_argument("--demo", action="store_true", help="also deploy sample-app/ by git push")
    up.set_defaults(func=cmd_up)
    dev = sub.add_parser("dev", help="serve a working folder, redeployed on every save")
    dev.add_argument("folder", nargs="?", default=".")
    dev.add_argument("--app", help="app name (default: the folder's name)")
    dev.set_defaults(func=cmd_dev)
    sub.add_parser("platform", help="run the control plane (git + API)").set_defaults(
        func=cmd_platform
    )
    sub.add_parser("runtime", help="run a runtime node").set_defaults(func=cmd_runtime)
    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = token_sub.add_parser("create", help="print a new token (and only the token)")
    create.add_argument("--admin", action="store_true", help="may do anything")
    create.add_argument("--app", action="append", help="may push to and manage APP")
    create.add_argument("--name", help="a label shown in release history")
    create.set_defaults(func=cmd_token)
    listing = token_sub.add_parser("list", help="list tokens (names and scopes, never secrets)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", type=int, help="the token's id, from `edge token list`")
    revoke.set_defaults(func=cmd_token_revoke)


def _app_commands(sub: Subparsers) -> None:
    init = sub.add_parser("init", help="create edge.toml and a hello function")
    init.add_argument("folder", nargs="?", default=".")
    init.add_argument("--app")
    init.set_defaults(func=cmd_init)
    remote = sub.add_parser("remote", help="print the `git remote add edge ...` line")
    remote.add_argument("app")
    remote.set_defaults(func=cmd_remote)
    apps = sub.add_parser("apps", help="list apps")
    apps.add_argument("--json", action="store_true")
    apps.set_defaults(func=cmd_apps)
    nodes = sub.add_parser("nodes", help="list runtime nodes with their region and health")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(func=cmd_nodes)
    releases = sub.add_parser("releases", help="list an app's releases")
    releases.add_argument("app")
    releases.add_argument("--env", default="production")
    releases.add_argument("--json", action="store_true")
    releases.set_defaults(func=cmd_releases)
    rollback = sub.add_parser("rollback", help="repoint production to an earlier release")
    rollback.add_argument("app")
    rollback.add_argument("--to", type=int, help="release version (default: the previous one)")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(func=cmd_rollback)


def _secrets_commands(sub: Subparsers) -> None:
    secrets = sub.add_parser(
        "secrets", help="an app's secrets (encrypted; env vars of its functions)"
    )
    actions = secrets.add_subparsers(dest="action", required=True)
    for action, func, text in (
        ("set", cmd_secrets_set, "set NAME from stdin (never argv); live without a push"),
        ("unset", cmd_secrets_unset, "remove NAME; live without a push"),
        ("list", cmd_secrets_list, "names and when they changed, never values"),
    ):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("app")
        if action != "list":
            parser.add_argument("name", help="the environment variable, e.g. DATABASE_URL")
        parser.add_argument(
            "--env", default="production", help="a preview's branch (default: production)"
        )
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)


def _observe_commands(sub: Subparsers) -> None:
    logs = sub.add_parser("logs", help="an app's function logs and platform events")
    logs.add_argument("app")
    logs.add_argument("--function", "-F", help="only this function")
    logs.add_argument("--env", help="only this environment (production, a preview)")
    logs.add_argument("--since", help="only newer than this: 30s, 10m, 2h, 1d")
    logs.add_argument("--limit", type=int, help="at most this many past records")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    logs.add_argument("--json", action="store_true")
    logs.set_defaults(func=cmd_logs)
    metrics = sub.add_parser("metrics", help="per-function invocations, latency, errors")
    metrics.add_argument("app")
    metrics.add_argument("--env", help="only this environment")
    metrics.add_argument("--json", action="store_true")
    metrics.set_defaults(func=cmd_metrics)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("EDGE_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = Config.from_env()
        return int(args.func(config, args))
    except (ClientError, EdgeError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
