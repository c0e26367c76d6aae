// The Fetch API surface: Headers, Request, Response (fetch() itself comes from a binding).
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define } = internal;
  const { utf8Encode, toBytes } = internal;
  // ---- Headers ----
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const LIST = Symbol("list");
  function checkName(name) {
    name = String(name);
    if (!TOKEN.test(name)) throw new TypeError(`Invalid header name: ${JSON.stringify(name)}`);
    return name.toLowerCase();
  }
  function checkValue(value) {
    value = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(value) || /[^\x00-\xff]/.test(value)) throw new TypeError(`Invalid header value: ${JSON.stringify(value)}`);
    return value;
  }
  class Headers {
    constructor(init) {
      this[LIST] = [];
      if (init === undefined || init === null) return;
      if (init instanceof Headers) { this[LIST] = init[LIST].map((p) => p.slice()); return; }
      if (typeof init !== "object") throw new TypeError("Headers init must be an object, an iterable of pairs or Headers");
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("Header pairs must have exactly two items");
          this.append(p[0], p[1]);
        }
      } else {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      }
    }
    append(name, value) { this[LIST].push([checkName(name), checkValue(value)]); }
    delete(name) { name = checkName(name); this[LIST] = this[LIST].filter(([k]) => k !== name); }
    get(name) {
      name = checkName(name);
      const values = this[LIST].filter(([k]) => k === name).map(([, v]) => v);
      return values.length ? values.join(", ") : null;
    }
    getSetCookie() { return this[LIST].filter(([k]) => k === "set-cookie").map(([, v]) => v); }
    getAll(name) { name = checkName(name); return this[LIST].filter(([k]) => k === name).map(([, v]) => v); }
    has(name) { name = checkName(name); return this[LIST].some(([k]) => k === name); }
    set(name, value) {
      name = checkName(name); value = checkValue(value);
      const i = this[LIST].findIndex(([k]) => k === name);
      if (i < 0) { this[LIST].push([name, value]); return; }
      this[LIST][i][1] = value;
      this[LIST] = this[LIST].filter(([k], j) => j <= i || k !== name);
    }
    *entries() {
      const names = [...new Set(this[LIST].map(([k]) => k))].sort();
      for (const name of names) {
        if (name === "set-cookie") { for (const v of this.getSetCookie()) yield [name, v]; }
        else yield [name, this.get(name)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(fn, thisArg) { for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "Headers"; }
  }
  internal.headersFromPairs = (pairs) => { const h = new Headers(); h[LIST] = pairs; return h; };
  internal.headerPairs = (h) => h[LIST];
  define("Headers", Headers);

  // ---- Body, Request, Response ----
  const BODY = Symbol("body");
  const USED = Symbol("used");
  function extractBody(body, headers) {
    let type = null, data;
    if (body === undefined || body === null) return null;
    if (typeof body === "string") { data = body; type = "text/plain;charset=UTF-8"; }
    else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) data = toBytes(body).slice();
    else if (body instanceof URLSearchParams) { data = body.toString(); type = "application/x-www-form-urlencoded;charset=UTF-8"; }
    else if (typeof body === "object" && (BODY in body)) data = body[BODY];
    else { data = String(body); type = "text/plain;charset=UTF-8"; }
    if (type && !headers.has("content-type")) headers.set("content-type", type);
    return data;
  }
  function take(owner) {
    if (owner[USED]) throw new TypeError("Body has already been used");
    owner[USED] = true;
    return owner[BODY];
  }
  class Body {
    get bodyUsed() { return Boolean(this[USED]); }
    get body() { return this[BODY] === null ? null : bodyStream(this); }
    async text() { const b = take(this); return b === null ? "" : typeof b === "string" ? b : internal.utf8Decode(b); }
    async bytes() { const b = take(this); return b === null ? new Uint8Array(0) : typeof b === "string" ? utf8Encode(b) : b.slice(); }
    async arrayBuffer() { return (await this.bytes()).buffer; }
    async json() { return JSON.parse(await this.text()); }
    async formData() { throw new TypeError("formData() is not supported on this platform; parse the body with text()"); }
    async blob() { throw new TypeError("Blob is not supported on this platform; use arrayBuffer()"); }
  }
  // A minimal one-chunk reader so `await response.body.getReader().read()` works.
  function bodyStream(owner) {
    return {
      [BODY]: owner[BODY],  // so `new Response(other.body)` passes the body through
      locked: false,
      getReader() {
        let done = false;
        return {
          async read() {
            if (done) return { done: true, value: undefined };
            done = true;
            return { done: false, value: await owner.bytes() };
          },
          releaseLock() {}, cancel: async () => {},
        };
      },
    };
  }
  const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];
  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const src = input instanceof Request ? input : null;
      this.url = src ? src.url : new URL(String(input)).href;
      let method = init.method !== undefined ? String(init.method) : src ? src.method : "GET";
      if (!TOKEN.test(method)) throw new TypeError(`Invalid method: ${method}`);
      this.method = METHODS.includes(method.toUpperCase()) ? method.toUpperCase() : method;
      this.headers = new Headers(init.headers !== undefined ? init.headers : src ? src.headers : undefined);
      const body = init.body !== undefined ? init.body : src ? src : null;
      if (body !== null && body !== undefined && (body !== src || src[BODY] !== null) &&
          (this.method === "GET" || this.method === "HEAD")) {
        throw new TypeError("Request with GET/HEAD method cannot have body.");
      }
      this[BODY] = extractBody(body, this.headers);
      this.redirect = init.redirect || (src ? src.redirect : "follow");
      this.signal = init.signal || (src ? src.signal : null);
      this.cf = src ? src.cf : undefined;
    }
    clone() { if (this[USED]) throw new TypeError("Body has already been used"); return new Request(this); }
    get [Symbol.toStringTag]() { return "Request"; }
  }
  internal.makeRequest = (method, url, headerPairs, body, cf) => {
    const r = Object.create(Request.prototype);
    r.method = method; r.url = url; r.headers = internal.headersFromPairs(headerPairs);
    r[BODY] = body; r.redirect = "follow"; r.signal = null; r.cf = cf;
    return r;
  };
  const NULL_BODY = [101, 103, 204, 205, 304];
  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Responses may only be constructed with status codes in the range 200 to 599, inclusive (got ${init.status}).`);
      }
      this.status = status;
      this.statusText = init.statusText === undefined ? "" : String(init.statusText);
      this.headers = new Headers(init.headers);
      if (body !== null && body !== undefined && NULL_BODY.includes(status)) {
        throw new TypeError(`Response with null body status ${status} cannot have body`);
      }
      this[BODY] = extractBody(body, this.headers);
      this.type = "default";
      this.url = "";
      this.redirected = false;
      this.webSocket = null;
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    clone() {
      if (this[USED]) throw new TypeError("Body has already been used");
      const r = new Response(null, { status: this.status, statusText: this.statusText, headers: this.headers });
      r[BODY] = this[BODY];
      return r;
    }
    static json(data, init = {}) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Value is not JSON serializable");
      const headers = new Headers(init.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(text, { ...init, headers });
    }
    static redirect(url, status = 302) {
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status: ${status}`);
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
    static error() { const r = new Response(null, { status: 500 }); r.type = "error"; return r; }
    get [Symbol.toStringTag]() { return "Response"; }
  }
  internal.BODY = BODY;
  define("fetch", async () => {
    throw new TypeError("fetch() is not available: edge functions cannot make outbound requests");
  });
  define("Request", Request);
  define("Response", Response);
})();
