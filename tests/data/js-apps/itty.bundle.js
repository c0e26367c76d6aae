// node_modules/itty-router/index.mjs
var t = ({ base: e = "", routes: t2 = [], ...o2 } = {}) => ({ __proto__: new Proxy({}, { get: (o3, r2, a2, s2) => (o4, ...n2) => t2.push([r2.toUpperCase?.(), RegExp(`^${(s2 = (e + o4).replace(/\/+(\/|$)/g, "$1")).replace(/(\/?\.?):(\w+)\+/g, "($1(?<$2>[^]+))").replace(/(\/?\.?):(\w+)/g, "($1(?<$2>[^$1/]+?))").replace(/\./g, "\\.").replace(/(\/?)\*/g, "($1.*)?")}/*$`), n2, s2]) && a2 }), routes: t2, ...o2, async fetch(e2, ...r2) {
  let a2, s2, n2 = new URL(e2.url), c2 = e2.query = { __proto__: null };
  for (let [e3, t3] of n2.searchParams) c2[e3] = c2[e3] ? [].concat(c2[e3], t3) : t3;
  e: try {
    for (let t3 of o2.before || []) if (null != (a2 = await t3(e2.proxy ?? e2, ...r2))) break e;
    t: for (let [o3, c3, l, i] of t2) if ((o3 == e2.method || "ALL" == o3) && (s2 = n2.pathname.match(c3))) {
      e2.params = s2.groups || {}, e2.route = i;
      for (let t3 of l) if (null != (a2 = await t3(e2.proxy ?? e2, ...r2))) break t;
    }
  } catch (t3) {
    if (!o2.catch) throw t3;
    a2 = await o2.catch(t3, e2.proxy ?? e2, ...r2);
  }
  try {
    for (let t3 of o2.finally || []) a2 = await t3(a2, e2.proxy ?? e2, ...r2) ?? a2;
  } catch (t3) {
    if (!o2.catch) throw t3;
    a2 = await o2.catch(t3, e2.proxy ?? e2, ...r2);
  }
  return a2;
} });
var o = (e = "text/plain; charset=utf-8", t2) => (o2, r2 = {}) => {
  if (void 0 === o2 || o2 instanceof Response) return o2;
  const a2 = new Response(t2?.(o2) ?? o2, r2.url ? void 0 : r2);
  return a2.headers.set("content-type", e), a2;
};
var r = o("application/json; charset=utf-8", JSON.stringify);
var a = (e) => ({ 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error" })[e] || "Unknown Error";
var s = (e = 500, t2) => {
  if (e instanceof Error) {
    const { message: o2, ...r2 } = e;
    e = e.status || 500, t2 = { error: o2 || a(e), ...r2 };
  }
  return t2 = { status: e, ..."object" == typeof t2 ? t2 : { error: t2 || a(e) } }, r(t2, { status: e });
};
var n = (e) => {
  e.proxy = new Proxy(e.proxy ?? e, { get: (t2, o2) => t2[o2]?.bind?.(e) ?? t2[o2] ?? t2?.params?.[o2] });
};
var c = ({ format: e = r, missing: o2 = (() => s(404)), finally: a2 = [], before: c2 = [], ...l } = {}) => t({ before: [n, ...c2], catch: s, finally: [(e2, ...t2) => e2 ?? o2(...t2), e, ...a2], ...l });
var p = o("text/plain; charset=utf-8", String);
var f = o("text/html");
var u = o("image/jpeg");
var h = o("image/png");
var g = o("image/webp");

// itty-app.js
var router = c({ base: "/itty" });
router.get("/items/:id", ({ params, query }) => ({ id: params.id, q: query.q ?? null }));
router.post("/digest", async (request) => {
  const digest = await crypto.subtle.digest("SHA-256", await request.arrayBuffer());
  return { sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("") };
});
router.get("/teapot", () => s(418, "short and stout"));
var itty_app_default = { fetch: router.fetch };
export {
  itty_app_default as default
};
