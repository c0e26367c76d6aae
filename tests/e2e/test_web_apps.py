"""A Flask app (WSGI) and a FastAPI app (ASGI) as entries, each from its own requirements.txt.

The packages come from the index ``make test`` installs the platform from (uv's
default index on this machine); the first run downloads them into the stack's
uv cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, Workdir, make_stack

from edge.redisserver import RedisServer

FLASK = """
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.route("/items/<item_id>", methods=["GET", "POST"])
def item(item_id):
    payload = {
        "id": item_id,
        "q": request.args.getlist("q"),
        "tag": request.headers.get("X-Tag"),
        "method": request.method,
        "path": request.path,
        "body": request.get_data(as_text=True),
    }
    status = 201 if request.method == "POST" else 200
    return jsonify(payload), status, {"X-Served-By": "flask"}
"""
FASTAPI = """
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.get("/items/{item_id}")
async def read(item_id: str, request: Request):
    return {"id": item_id, "q": request.query_params.getlist("q"),
            "tag": request.headers.get("x-tag"), "path": request.url.path}


@app.post("/items/{item_id}", status_code=201)
async def create(item_id: str, request: Request, response: Response):
    response.headers["x-served-by"] = "fastapi"
    return {"id": item_id, "body": (await request.body()).decode()}
"""


def manifest(kind: str = "") -> str:
    declared = f'kind = "{kind}"\n' if kind else ""
    return f'[functions.web]\nentry = "app.py:app"\nroutes = ["/*"]\n{declared}'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("webapps"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    stack = make_stack(tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url)
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()
        redis.stop()


def deploy(stack: Stack, tmp: Path, files: dict[str, str]) -> str:
    app = f"web{uuid.uuid4().hex[:8]}"
    work = Workdir(tmp / app)
    work.commit("app", files)
    out = work.push(stack.remote(app))
    assert "live at" in out.stderr, out.stderr
    return app


def test_flask_app_answers_its_routes(stack: Stack, tmp_path: Path) -> None:
    app = deploy(
        stack,
        tmp_path,
        {"edge.toml": manifest(), "app.py": FLASK, "requirements.txt": "flask>=3\n"},
    )
    host = stack.host(app)
    got = stack.get(host, "/items/42?q=a&q=b", headers={"X-Tag": "t1"})
    assert got.status_code == 200, got.text
    assert got.json() == {
        "id": "42",
        "q": ["a", "b"],
        "tag": "t1",
        "method": "GET",
        "path": "/items/42",
        "body": "",
    }
    assert got.headers["x-served-by"] == "flask"
    assert got.headers["content-type"] == "application/json"
    posted = stack.call("POST", host, "/items/7", content=b"hello")
    assert posted.status_code == 201
    assert posted.json()["body"] == "hello"
    assert stack.get(host, "/nope").status_code == 404


def test_fastapi_app_answers_its_routes(stack: Stack, tmp_path: Path) -> None:
    app = deploy(
        stack,
        tmp_path,
        {"edge.toml": manifest("asgi"), "app.py": FASTAPI, "requirements.txt": "fastapi\n"},
    )
    host = stack.host(app)
    got = stack.get(host, "/items/9?q=x&q=y", headers={"X-Tag": "t2"})
    assert got.status_code == 200, got.text
    assert got.json() == {"id": "9", "q": ["x", "y"], "tag": "t2", "path": "/items/9"}
    posted = stack.call("POST", host, "/items/3", content=b'{"a": 1}')
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"id": "3", "body": '{"a": 1}'}
    assert posted.headers["x-served-by"] == "fastapi"
    assert stack.get(host, "/nope").status_code == 404
