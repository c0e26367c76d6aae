"""Workers Web APIs end to end: real Hono and itty-router apps, bundled with esbuild.

tests/data/js-apps/*.bundle.js are committed builds of the apps beside them
(scripts/build-js-apps.sh regenerates them); one push deploys both, and every
check runs through the real runtime. Signatures and digests made in V8 are
checked here with Python's own ``cryptography``/``hmac``/``hashlib``, and the
other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from stack import Stack, Workdir

APPS = Path(__file__).resolve().parent.parent / "data" / "js-apps"
JWT_SECRET = "hs256-secret-" + uuid.uuid4().hex
WEBHOOK_SECRET = "whsec-" + uuid.uuid4().hex
STREAMS = """
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/echo-stream") {
      const reader = request.body.getReader();
      let size = 0;
      for (let r = await reader.read(); !r.done; r = await reader.read()) size += r.value.length;
      return Response.json({ size, isStream: request.body instanceof ReadableStream });
    }
    if (path === "/from-stream") {
      const body = new ReadableStream({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 1));
          c.enqueue(new TextEncoder().encode("chunk "));
          if (++this.n >= 3) c.close();
        },
        n: 0,
      }).pipeThrough(new CompressionStream("gzip")).pipeThrough(new DecompressionStream("gzip"));
      return new Response(body, { headers: { "content-type": "text/plain" } });
    }
    if (path === "/bytes") return new Response(new Uint8Array([0, 1, 2, 255]));
    return new Response("missing", { status: 404 });
  },
};
"""


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def host(
    runtime_stack: Stack, tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey
) -> str:
    private = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    env = {
        "JWT_SECRET": JWT_SECRET,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ADMIN_PASSWORD": "open sesame",
        "RSA_PRIVATE": private,
        "RSA_PUBLIC": public,
    }
    manifest = (
        "[env]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in env.items())
        + '[functions.hono]\nentry = "hono.js"\nroutes = ["/*"]\n'
        + '[functions.itty]\nentry = "itty.js"\nroutes = ["/itty/*"]\n'
        + '[functions.streams]\nentry = "streams.js"\nroutes = ["/s/*"]\n'
    )
    name = "webapi-" + uuid.uuid4().hex[:8]
    work = Workdir(Path(tmp_path_factory.mktemp("webapi")) / name)
    work.commit(
        "hono, itty-router and streams",
        {
            "edge.toml": manifest,
            "hono.js": (APPS / "hono.bundle.js").read_text(),
            "itty.js": (APPS / "itty.bundle.js").read_text(),
            "streams.js": STREAMS.replace('=== "/', '=== "/s/'),
        },
    )
    out = work.push(runtime_stack.remote(name))
    assert "v1 live at" in out.stderr, out.stderr
    return runtime_stack.host(name)


def test_hs256_jwt_signed_in_v8_verifies_in_python_and_guards_a_route(
    runtime_stack: Stack, host: str
) -> None:
    token = runtime_stack.get(host, "/jwt/hs256?sub=alice").json()["token"]
    head, payload, signature = token.split(".")
    expected = hmac.new(JWT_SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256)
    assert hmac.compare_digest(_unb64u(signature), expected.digest())
    assert json.loads(_unb64u(payload))["sub"] == "alice"
    me = runtime_stack.get(host, "/jwt/hs256/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json() == {"sub": "alice"}
    forged = f"{head}.{_b64u(json.dumps({'sub': 'mallory'}).encode())}.{signature}"
    denied = runtime_stack.get(host, "/jwt/hs256/me", headers={"Authorization": f"Bearer {forged}"})
    assert denied.status_code == 401


def test_rs256_jwt_both_ways(runtime_stack: Stack, host: str, rsa_key: rsa.RSAPrivateKey) -> None:
    token = runtime_stack.get(host, "/jwt/rs256?sub=bob").json()["token"]
    head, payload, signature = token.split(".")
    rsa_key.public_key().verify(  # raises if V8's signature is wrong
        _unb64u(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    ours_head = _b64u(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    ours_payload = _b64u(json.dumps({"sub": "carol"}).encode())
    signed = f"{ours_head}.{ours_payload}".encode()
    ours = signed.decode() + "." + _b64u(rsa_key.sign(signed, padding.PKCS1v15(), hashes.SHA256()))
    accepted = runtime_stack.call("POST", host, "/jwt/rs256/verify", json={"token": ours})
    assert accepted.status_code == 200 and accepted.json()["payload"] == {"sub": "carol"}
    tampered = ours[:-4] + ("AAAA" if not ours.endswith("AAAA") else "BBBB")
    refused = runtime_stack.call("POST", host, "/jwt/rs256/verify", json={"token": tampered})
    assert refused.status_code == 401


def test_hmac_webhook_verification(runtime_stack: Stack, host: str) -> None:
    body = json.dumps({"event": "paid", "id": uuid.uuid4().hex}).encode()
    good = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    ok = runtime_stack.call("POST", host, "/webhook", content=body, headers={"x-signature": good})
    assert ok.status_code == 200 and ok.json() == {"ok": True, "bytes": len(body)}
    bad = runtime_stack.call(
        "POST", host, "/webhook", content=body + b" ", headers={"x-signature": good}
    )
    assert bad.status_code == 401


def test_basic_auth_and_sha_etags(runtime_stack: Stack, host: str) -> None:
    assert runtime_stack.get(host, "/admin/panel", auth=("admin", "nope")).status_code == 401
    welcome = runtime_stack.get(host, "/admin/panel", auth=("admin", "open sesame"))
    assert welcome.status_code == 200 and welcome.text == "welcome"
    doc = runtime_stack.get(host, "/etag/doc")
    assert doc.headers["x-sha256"] == hashlib.sha256(doc.content).hexdigest()
    assert doc.headers["etag"] == f'"{hashlib.sha1(doc.content).hexdigest()}"'  # Hono's etag()
    again = runtime_stack.get(host, "/etag/doc", headers={"If-None-Match": doc.headers["etag"]})
    assert again.status_code == 304
    sha = runtime_stack.get(host, "/etag256/doc")
    assert sha.headers["etag"] == f'"{hashlib.sha256(sha.content).hexdigest()}"'
    fresh = runtime_stack.get(host, "/etag256/doc", headers={"If-None-Match": sha.headers["etag"]})
    assert fresh.status_code == 304 and fresh.content == b""


def test_multipart_upload_with_a_file_part(runtime_stack: Stack, host: str) -> None:
    data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    resp = runtime_stack.call(
        "POST",
        host,
        "/upload",
        data={"title": "quarterly report"},
        files={"file": ("report.bin", data, "application/x-report")},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "title": "quarterly report",
        "name": "report.bin",
        "type": "application/x-report",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_responses_without_a_content_type_get_none(runtime_stack: Stack, host: str) -> None:
    go = runtime_stack.get(host, "/go")
    assert go.status_code == 302 and go.headers["location"] == "/landing"
    assert "content-type" not in go.headers
    nothing = runtime_stack.get(host, "/nothing")
    assert nothing.status_code == 204 and "content-type" not in nothing.headers
    raw = runtime_stack.get(host, "/s/bytes")
    assert raw.content == bytes([0, 1, 2, 255]) and "content-type" not in raw.headers


def test_stream_bodies_are_read_and_built_in_v8(runtime_stack: Stack, host: str) -> None:
    text = runtime_stack.get(host, "/stream")
    assert text.status_code == 200 and text.text == "one two three"
    assert text.headers["content-type"].startswith("text/plain")
    echoed = runtime_stack.call("POST", host, "/s/echo-stream", content=b"x" * 100_000)
    assert echoed.json() == {"size": 100_000, "isStream": True}
    built = runtime_stack.get(host, "/s/from-stream")
    assert built.status_code == 200 and built.text == "chunk chunk chunk "


def test_itty_router_app(runtime_stack: Stack, host: str) -> None:
    item = runtime_stack.get(host, "/itty/items/9?q=hat")
    assert item.status_code == 200 and item.json() == {"id": "9", "q": "hat"}
    digest = runtime_stack.call("POST", host, "/itty/digest", content=b"abc")
    assert digest.json() == {"sha256": hashlib.sha256(b"abc").hexdigest()}
    teapot = runtime_stack.get(host, "/itty/teapot")
    assert teapot.status_code == 418 and teapot.json()["error"] == "short and stout"
