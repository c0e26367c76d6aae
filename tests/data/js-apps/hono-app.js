// A real Hono app (bundled by scripts/build-js-apps.sh into hono.bundle.js):
// JWT (HS256, RS256), basic auth, ETag, parseBody() with files, redirects and streamText.
import { Hono } from "hono";
import { basicAuth } from "hono/basic-auth";
import { etag } from "hono/etag";
import { jwt, sign, verify } from "hono/jwt";
import { streamText } from "hono/streaming";

const app = new Hono();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (data) => hex(await crypto.subtle.digest("SHA-256", data));

app.get("/jwt/hs256", async (c) => {
  const token = await sign({ sub: c.req.query("sub"), role: "reader" }, c.env.JWT_SECRET, "HS256");
  return c.json({ token });
});
app.get("/jwt/hs256/me", (c, next) => jwt({ secret: c.env.JWT_SECRET, alg: "HS256" })(c, next),
  (c) => c.json({ sub: c.get("jwtPayload").sub }));
app.get("/jwt/rs256", async (c) => {
  const token = await sign({ sub: c.req.query("sub") }, c.env.RSA_PRIVATE, "RS256");
  return c.json({ token });
});
app.post("/jwt/rs256/verify", async (c) => {
  const { token } = await c.req.json();
  try {
    return c.json({ payload: await verify(token, c.env.RSA_PUBLIC, "RS256") });
  } catch (e) {
    return c.json({ error: e.name }, 401);
  }
});

app.post("/webhook", async (c) => {
  const body = await c.req.arrayBuffer();
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(c.env.WEBHOOK_SECRET),
    { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  const given = c.req.header("x-signature") || "";
  const sig = Uint8Array.from(given.match(/../g) || [], (h) => parseInt(h, 16));
  const ok = await crypto.subtle.verify("HMAC", key, sig, body);
  const expected = new Uint8Array(await crypto.subtle.sign("HMAC", key, body));
  const same = sig.length === expected.length && crypto.subtle.timingSafeEqual(sig, expected);
  return ok && same ? c.json({ ok: true, bytes: body.byteLength }) : c.json({ ok: false }, 401);
});

app.use("/admin/*", (c, next) => basicAuth({ username: "admin", password: c.env.ADMIN_PASSWORD })(c, next));
app.get("/admin/panel", (c) => c.text("welcome"));

app.use("/etag/*", etag());
app.use("/etag256/*", etag({ generateDigest: (body) => crypto.subtle.digest("SHA-256", body) }));
app.get("/etag256/doc", (c) => c.text("a document worth caching\n"));
app.get("/etag/doc", async (c) => {
  const body = "a document worth caching\n";
  c.header("x-sha256", await sha256(new TextEncoder().encode(body)));
  return c.text(body);
});

app.post("/upload", async (c) => {
  const form = await c.req.parseBody();
  const file = form.file;
  return c.json({
    title: form.title,
    name: file.name,
    type: file.type,
    size: file.size,
    sha256: await sha256(await file.arrayBuffer()),
  });
});

app.get("/go", (c) => c.redirect("/landing", 302));
app.get("/nothing", (c) => c.body(null, 204));

app.get("/stream", (c) => streamText(c, async (stream) => {
  for (const word of ["one ", "two ", "three"]) {
    await stream.write(word);
    await stream.sleep(1);
  }
}));

export default app;
