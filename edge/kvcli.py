"""``edge kv get|put|delete|list``: an app environment's function KV from a terminal."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.parse
from typing import Any

from edge.apiclient import api
from edge.config import Config


def _path(args: argparse.Namespace, key: str | None = None, **query: Any) -> str:
    app = urllib.parse.quote(args.app, safe="")
    suffix = "" if key is None else "/" + urllib.parse.quote(key, safe="")
    params = urllib.parse.urlencode({"env": args.env, **{k: v for k, v in query.items() if v}})
    return f"/v1/apps/{app}/kv{suffix}?{params}"


def cmd_get(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", _path(args, args.key))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        sys.stdout.buffer.write(base64.b64decode(data["value_base64"]))
        sys.stdout.flush()
    return 0


def cmd_put(config: Config, args: argparse.Namespace) -> int:
    raw = args.value.encode() if args.value is not None else sys.stdin.buffer.read()
    body: dict[str, Any] = {"value_base64": base64.b64encode(raw).decode("ascii")}
    if args.ttl is not None:
        body["ttl"] = args.ttl
    data = api(config, "PUT", _path(args, args.key), body)
    print(json.dumps(data) if args.json else f"stored {args.key} ({data['environment']})")
    return 0


def cmd_delete(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "DELETE", _path(args, args.key))
    print(json.dumps(data) if args.json else f"deleted {args.key} ({data['environment']})")
    return 0


def cmd_list(config: Config, args: argparse.Namespace) -> int:
    data = api(config, "GET", _path(args, prefix=args.key, limit=args.limit, cursor=args.cursor))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key in data["keys"]:
        print(key)
    if data.get("cursor"):
        print(f"(more: --cursor {data['cursor']})", file=sys.stderr)
    return 0


def add_kv_commands(sub: Any) -> None:
    kv = sub.add_parser("kv", help="an app environment's function KV")
    actions = kv.add_subparsers(dest="action", required=True)
    for action, func, text in (
        ("get", cmd_get, "print KEY's value (raw bytes)"),
        ("put", cmd_put, "store VALUE (or stdin) under KEY"),
        ("delete", cmd_delete, "remove KEY"),
        ("list", cmd_list, "list keys starting with KEY (a prefix; all when omitted)"),
    ):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("app")
        parser.add_argument("key", nargs="?" if action == "list" else None, default="")
        if action == "put":
            parser.add_argument("value", nargs="?", help="the value (default: stdin)")
            parser.add_argument("--ttl", type=float, help="seconds until it expires")
        if action == "list":
            parser.add_argument("--limit", type=int, help="at most this many (<= 1000)")
            parser.add_argument("--cursor", help="continue after this key")
        parser.add_argument(
            "--env", default="production", help="a preview's branch (default: production)"
        )
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)
