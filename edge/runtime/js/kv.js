// env.KV: the Workers KV shape (get/put/delete/list) plus incr, for JavaScript
// functions. Every operation is a host call (internal.hostCall, dispatch.js):
// the V8 host relays it to the runtime worker, which checks it and runs it in
// this app environment's namespace. Nothing here can name another namespace.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const TYPES = ["text", "json", "arrayBuffer"];

  function unwrap(reply) {
    if (reply && reply.ok) return reply.value;
    const err = new Error("KV: " + (reply ? reply.message : "no answer from the runtime"));
    err.code = reply ? reply.error : "unavailable";
    throw err;
  }
  const call = (args) => internal.hostCall("kv", args).then(unwrap);
  function bytesOf(value) {
    if (typeof value === "string") return internal.utf8Encode(value);
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return internal.toBytes(value);
    throw new TypeError("KV put() takes a string, an ArrayBuffer or an ArrayBufferView");
  }
  function ttlOf(options) {
    if (options.expirationTtl !== undefined) return Number(options.expirationTtl);
    if (options.expiration !== undefined) return Number(options.expiration) - Date.now() / 1000;
    return null;
  }

  internal.makeKV = () => Object.freeze({
    async get(key, options) {
      const type = typeof options === "string" ? options : (options && options.type) || "text";
      if (!TYPES.includes(type)) throw new TypeError(`KV get() type must be one of ${TYPES.join(", ")}`);
      const b64 = await call({ op: "get", key: String(key) });
      if (b64 === null) return null;
      const bytes = Uint8Array.fromBase64(b64);
      if (type === "arrayBuffer") return bytes.buffer;
      const text = internal.utf8Decode(bytes);
      return type === "json" ? JSON.parse(text) : text;
    },
    async put(key, value, options = {}) {
      const data = bytesOf(value).toBase64();
      await call({ op: "put", key: String(key), value: data, ttl: ttlOf(options || {}) });
    },
    async delete(key) {
      await call({ op: "delete", key: String(key) });
    },
    async list(options = {}) {
      const o = options || {};
      const args = { op: "list", prefix: String(o.prefix ?? ""), limit: o.limit ?? 1000 };
      if (o.cursor) args.cursor = String(o.cursor);
      const page = await call(args);
      const out = { keys: page.keys.map((name) => ({ name })), list_complete: page.cursor === null };
      if (page.cursor !== null) out.cursor = page.cursor;
      return out;
    },
    async incr(key, by = 1) {
      return call({ op: "incr", key: String(key), by });
    },
  });
})();
