// The Fetch API: Headers, Request, Response, and fetch() (performed by the runtime
// worker, see the end of this file).
//
// A body is kept as it came (null, a string, bytes, or a ReadableStream); the
// `body` getter turns it into a ReadableStream on first use, and the readers
// (text, json, arrayBuffer, bytes, blob, formData) read either form once.
// dispatch.js sends a response's body with internal.responseBody().
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define, utf8Encode, toBytes } = internal;

  // ---- Headers ----
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const LIST = Symbol("list");
  const GUARD = Symbol("guard");
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
  function mutable(h) { if (h[GUARD] === "immutable") throw new TypeError("These headers are immutable"); }
  // The spec's "sort and combine", computed afresh at each step so iteration is live.
  function sortedPairs(h) {
    const names = [...new Set(h[LIST].map(([k]) => k))].sort();
    const out = [];
    for (const name of names) {
      const values = h[LIST].filter(([k]) => k === name).map(([, v]) => v);
      if (name === "set-cookie") for (const v of values) out.push([name, v]);
      else out.push([name, values.join(", ")]);
    }
    return out;
  }
  const IteratorProto = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
  const HeadersIterator = Object.create(IteratorProto, {
    next: {
      value() {
        const pairs = sortedPairs(this.headers);
        if (this.index >= pairs.length) return { value: undefined, done: true };
        const pair = pairs[this.index++];
        return { value: this.kind === "keys" ? pair[0] : this.kind === "values" ? pair[1] : pair, done: false };
      },
      writable: true, configurable: true, enumerable: true,
    },
    [Symbol.toStringTag]: { value: "Headers Iterator", configurable: true },
  });
  const iterate = (headers, kind) => Object.assign(Object.create(HeadersIterator), { headers, kind, index: 0 });
  // A brand check that runs no proxy trap: a private name, set in the constructor
  // (a WeakSet did as much, but its ephemerons cost ~3% of the V8 host's CPU
  // under load, two Headers a request; perf).
  let isHeaders = null;
  function fill(headers, init) {
    if (isHeaders(init) && init[Symbol.iterator] === Headers.prototype[Symbol.iterator]) {
      for (const [k, v] of init[LIST]) headers.append(k, v);
      return;
    }
    if (init === null || (typeof init !== "object" && typeof init !== "function")) {
      throw new TypeError("Headers init must be an object, an iterable of pairs or Headers");
    }
    const method = init[Symbol.iterator];
    if (method !== undefined && method !== null) {
      if (typeof method !== "function") throw new TypeError("Headers init's @@iterator must be a function");
      for (const pair of { [Symbol.iterator]: () => method.call(init) }) {
        const p = Array.from(pair);
        if (p.length !== 2) throw new TypeError("Header pairs must have exactly two items");
        headers.append(p[0], p[1]);
      }
      return;
    }
    const record = new Map();  // a WebIDL record: own enumerable keys, later duplicates win
    for (const key of Reflect.ownKeys(init)) {
      const desc = Reflect.getOwnPropertyDescriptor(init, key);
      if (desc === undefined || !desc.enumerable) continue;
      if (typeof key === "symbol") throw new TypeError("Header names must be strings");
      record.set(key, init[key]);
    }
    for (const [k, v] of record) headers.append(k, v);
  }
  class Headers {
    #brand() {}
    static {
      isHeaders = (value) => value !== null && typeof value === "object" && #brand in value;
    }
    constructor(init = undefined) {
      this[LIST] = [];
      this[GUARD] = "none";
      if (init !== undefined) fill(this, init);
    }
    append(name, value) {
      name = checkName(name); value = checkValue(value);
      mutable(this);
      this[LIST].push([name, value]);
    }
    delete(name) { name = checkName(name); mutable(this); this[LIST] = this[LIST].filter(([k]) => k !== name); }
    get(name) {
      name = checkName(name);
      const values = this[LIST].filter(([k]) => k === name).map(([, v]) => v);
      return values.length ? values.join(", ") : null;
    }
    getSetCookie() { return this[LIST].filter(([k]) => k === "set-cookie").map(([, v]) => v); }
    has(name) { name = checkName(name); return this[LIST].some(([k]) => k === name); }
    set(name, value) {
      name = checkName(name); value = checkValue(value);
      mutable(this);
      const i = this[LIST].findIndex(([k]) => k === name);
      if (i < 0) { this[LIST].push([name, value]); return; }
      this[LIST][i][1] = value;
      this[LIST] = this[LIST].filter(([k], j) => j <= i || k !== name);
    }
    entries() { return iterate(this, "entries"); }
    keys() { return iterate(this, "keys"); }
    values() { return iterate(this, "values"); }
    forEach(fn, thisArg = undefined) {
      if (typeof fn !== "function") throw new TypeError("Headers.forEach: the callback must be a function");
      for (let i = 0; ; i++) {
        const pairs = sortedPairs(this);
        if (i >= pairs.length) return;
        fn.call(thisArg, pairs[i][1], pairs[i][0], this);
      }
    }
    get [Symbol.toStringTag]() { return "Headers"; }
  }
  for (const name of ["append", "delete", "get", "getSetCookie", "has", "set", "entries", "keys", "values", "forEach"]) {
    Object.defineProperty(Headers.prototype, name, { enumerable: true });  // WebIDL operations are enumerable
  }
  Object.defineProperty(Headers.prototype, Symbol.iterator, { value: Headers.prototype.entries, writable: true, configurable: true });
  internal.headersFromPairs = (pairs) => { const h = new Headers(); h[LIST] = pairs; return h; };
  internal.headerPairs = (h) => h[LIST];
  const freeze = (h) => { h[GUARD] = "immutable"; return h; };

  // ---- bodies ----
  const BODY = Symbol("body");
  // [source, type]: source is null, a string, a Uint8Array or a ReadableStream.
  function extractBody(body) {
    if (body === undefined || body === null) return [null, null];
    if (typeof body === "string") return [body, "text/plain;charset=UTF-8"];
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return [toBytes(body).slice(), null];
    if (body instanceof URLSearchParams) return [body.toString(), "application/x-www-form-urlencoded;charset=UTF-8"];
    if (internal.isBlob(body)) return [internal.blobBytes(body), body.type || null];
    if (body instanceof FormData) { const { bytes, type } = internal.encodeForm(body); return [bytes, type]; }
    if (internal.isReadableStream(body)) {
      if (body.locked || internal.isDisturbed(body)) throw new TypeError("The body stream is locked or already read");
      // A body's own untouched stream (`new Response(other.body, other)`) passes its
      // bytes through, so the common re-wrap costs no stream reading.
      return [BUFFERED.has(body) ? BUFFERED.get(body) : body, null];
    }
    return [String(body), "text/plain;charset=UTF-8"];
  }
  function setBody(owner, body, headers) {
    const [source, type] = extractBody(body);
    if (type && !headers.has("content-type")) headers.append("content-type", type);
    owner[BODY] = { source, stream: null, used: false };
  }
  const BUFFERED = new WeakMap();  // a stream made from a buffered body -> that body
  function streamOf(slot) {
    if (slot.source === null) return null;
    if (!slot.stream) {
      const s = slot.source;
      if (internal.isReadableStream(s)) slot.stream = s;
      else {
        slot.stream = internal.streamOf(typeof s === "string" ? utf8Encode(s) : s);
        BUFFERED.set(slot.stream, s);
      }
    }
    return slot.stream;
  }
  const disturbed = (slot) => slot.used || (slot.stream !== null && internal.isDisturbed(slot.stream));
  async function consume(owner) {
    const slot = owner[BODY];
    if (disturbed(slot)) throw new TypeError("Body has already been used");
    if (slot.stream && slot.stream.locked) throw new TypeError("The body stream is locked");
    slot.used = true;
    if (slot.source === null) return new Uint8Array(0);
    if (slot.stream || internal.isReadableStream(slot.source)) return internal.readAll(streamOf(slot));
    const s = slot.source;
    return typeof s === "string" ? utf8Encode(s) : s.slice();
  }
  const mimeOf = (owner) => owner.headers.get("content-type") || "";
  class Body {
    get body() { return streamOf(this[BODY]); }
    get bodyUsed() { return disturbed(this[BODY]); }
    async text() {
      // A body made from a string decodes to that string, well-formed: skip the
      // UTF-8 round trip (a request's text body arrives as a string).
      const slot = this[BODY];
      const direct = typeof slot.source === "string" && slot.stream === null && !slot.used;
      if (direct) slot.used = true;
      const text = direct ? slot.source.toWellFormed() : internal.utf8Decode(await consume(this));
      return text.replace(/^\ufeff/, "");
    }
    async bytes() { return consume(this); }
    async arrayBuffer() { return (await consume(this)).buffer; }
    async json() { return JSON.parse(await this.text()); }
    async blob() { return internal.makeBlob(await consume(this), mimeOf(this).toLowerCase()); }
    async formData() { return internal.parseForm(await consume(this), mimeOf(this)); }
  }
  // A copy of a body for clone(): a stream is teed, the original keeps one branch.
  function cloneBody(owner) {
    const slot = owner[BODY];
    if (disturbed(slot)) throw new TypeError("Body has already been used");
    if (slot.source === null) return { source: null, stream: null, used: false };
    if (slot.stream === null && !internal.isReadableStream(slot.source)) return { source: slot.source, stream: null, used: false };
    const [a, b] = internal.teeCloning(streamOf(slot));
    slot.stream = a; slot.source = a;
    return { source: b, stream: null, used: false };
  }
  // What dispatch.js sends: null, a string or bytes; a stream is read whole first
  // (a Promise then). The streaming work will send it as it is produced instead:
  // internal.streamedBody(res) is the ReadableStream a response was built from
  // (null when its body is buffered: those stay on responseBody()'s fast path).
  internal.streamedBody = (res) => {
    const slot = res[BODY];
    const stream = slot.stream || slot.source;
    return internal.isReadableStream(stream) && !BUFFERED.has(stream) ? stream : null;
  };
  internal.responseBody = (res) => {
    const slot = res[BODY];
    if (slot.source === null) return null;
    if (slot.stream === null && !internal.isReadableStream(slot.source)) {
      if (slot.used) throw new TypeError("The response body was already read");
      return slot.source;
    }
    return consume(res);
  };

  // ---- Request ----
  const REQ = Symbol("request");
  const NORMALIZED = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
  const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];
  const ENUMS = {
    mode: ["same-origin", "no-cors", "cors", "navigate", "websocket"],
    credentials: ["omit", "same-origin", "include"],
    cache: ["default", "no-store", "reload", "no-cache", "force-cache", "only-if-cached"],
    redirect: ["follow", "error", "manual"],
    referrerPolicy: ["", "no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
      "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"],
    duplex: ["half"],
  };
  const DEFAULTS = { mode: "cors", credentials: "same-origin", cache: "default", redirect: "follow",
    referrer: "about:client", referrerPolicy: "", integrity: "", keepalive: false, duplex: "half" };
  function parseUrl(input) {
    let url;
    try { url = new URL(String(input)); } catch { throw new TypeError(`Invalid URL: ${String(input)}`); }
    if (url.username || url.password) throw new TypeError(`Request URLs cannot have credentials: ${url.href}`);
    return url.href;
  }
  function requestOptions(init, src) {
    const out = {};
    for (const key of Object.keys(DEFAULTS)) {
      let v = init[key] !== undefined ? init[key] : src ? src[REQ][key] : DEFAULTS[key];
      if (ENUMS[key]) {
        v = String(v);
        if (!ENUMS[key].includes(v)) throw new TypeError(`Invalid ${key}: '${v}'`);
      }
      out[key] = key === "keepalive" ? Boolean(v) : key === "referrer" || key === "integrity" ? String(v) : v;
    }
    if (init.referrer !== undefined && out.referrer !== "" && out.referrer !== "about:client") {
      try { out.referrer = new URL(out.referrer).href; } catch { throw new TypeError(`Invalid referrer: ${out.referrer}`); }
    }
    if (init.window !== undefined && init.window !== null) throw new TypeError("RequestInit's window must be null");
    if (out.mode === "navigate") throw new TypeError("Requests cannot be constructed with mode 'navigate'");
    if (out.cache === "only-if-cached" && out.mode !== "same-origin") {
      throw new TypeError("cache 'only-if-cached' needs mode 'same-origin'");
    }
    return out;
  }
  class Request extends Body {
    constructor(input, init = undefined) {
      super();
      if (arguments.length === 0) throw new TypeError("Request: the input argument is required");
      const opts = init === undefined || init === null ? {} : init;
      const src = input instanceof Request ? input : null;
      const url = src ? src.url : parseUrl(input);
      let method = src ? src.method : "GET";
      if (opts.method !== undefined) {
        method = String(opts.method);
        if (!TOKEN.test(method)) throw new TypeError(`Invalid method: ${method}`);
        if (FORBIDDEN_METHODS.includes(method.toUpperCase())) throw new TypeError(`Forbidden method: ${method}`);
        if (NORMALIZED.includes(method.toUpperCase())) method = method.toUpperCase();
      }
      const options = requestOptions(opts, src);
      if (options.mode === "no-cors" && !["GET", "HEAD", "POST"].includes(method)) {
        throw new TypeError(`Method ${method} is not allowed in no-cors mode`);
      }
      const signal = opts.signal !== undefined ? opts.signal : src ? src.signal : null;
      if (signal !== null && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
      const own = internal.newSignal();
      if (signal) {
        if (signal.aborted) internal.abortSignal(own, signal.reason);
        else signal.addEventListener("abort", () => internal.abortSignal(own, signal.reason));
      }
      const headers = new Headers(opts.headers !== undefined ? opts.headers : src ? src.headers : undefined);
      const hasBody = opts.body !== undefined && opts.body !== null;
      const inherits = !hasBody && opts.body === undefined && src && src[BODY].source !== null;
      if ((hasBody || inherits) && (method === "GET" || method === "HEAD")) {
        throw new TypeError("Request with GET/HEAD method cannot have body.");
      }
      this[REQ] = { method, url, headers, signal: own, cf: src ? src.cf : undefined, ...options };
      if (inherits) {
        if (disturbed(src[BODY])) throw new TypeError("The input request's body has already been used");
        this[BODY] = { source: streamOf(src[BODY]), stream: null, used: false };
        src[BODY].used = true;
        if (!headers.has("content-type") && src.headers.has("content-type") && opts.headers === undefined) {
          headers.set("content-type", src.headers.get("content-type"));
        }
      } else {
        setBody(this, hasBody ? opts.body : null, headers);
      }
    }
    get method() { return this[REQ].method; }
    get url() { return this[REQ].url; }
    get headers() { return this[REQ].headers; }
    get signal() { return this[REQ].signal || (this[REQ].signal = internal.newSignal()); }
    get cf() { return this[REQ].cf; }
    get destination() { return ""; }
    get isHistoryNavigation() { return false; }
    get isReloadNavigation() { return false; }
    clone() {
      const copy = Object.create(Request.prototype);
      const body = cloneBody(this);
      copy[REQ] = { ...this[REQ], headers: new Headers(this.headers) };
      copy[BODY] = body;
      return copy;
    }
    get [Symbol.toStringTag]() { return "Request"; }
  }
  for (const key of Object.keys(DEFAULTS)) {
    Object.defineProperty(Request.prototype, key, { get() { return this[REQ][key]; }, enumerable: true, configurable: true });
  }
  internal.makeRequest = (method, url, headerPairs, body, cf) => {
    const r = Object.create(Request.prototype);
    // The signal is made on first use: most handlers never look at it.
    r[REQ] = { method, url, headers: internal.headersFromPairs(headerPairs), signal: null, cf, ...DEFAULTS };
    r[BODY] = { source: body, stream: null, used: false };
    return r;
  };

  // ---- Response ----
  const RES = Symbol("response");
  const NULL_BODY = [101, 103, 204, 205, 304];
  const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;
  class Response extends Body {
    constructor(body = null, init = undefined) {
      super();
      const opts = init === undefined || init === null ? {} : init;
      const status = opts.status === undefined ? 200 : Number(opts.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Responses may only be constructed with status codes in the range 200 to 599, inclusive (got ${opts.status}).`);
      }
      const statusText = opts.statusText === undefined ? "" : String(opts.statusText);
      if (!REASON.test(statusText)) throw new TypeError("Invalid statusText");
      const headers = new Headers(opts.headers);
      if (body !== null && body !== undefined && NULL_BODY.includes(status)) {
        throw new TypeError(`Response with null body status ${status} cannot have body`);
      }
      this[RES] = { status, statusText, headers, type: "default", url: "", redirected: false, webSocket: opts.webSocket || null };
      setBody(this, body, headers);
    }
    get status() { return this[RES].status; }
    get statusText() { return this[RES].statusText; }
    get headers() { return this[RES].headers; }
    get type() { return this[RES].type; }
    get url() { return this[RES].url; }
    get redirected() { return this[RES].redirected; }
    get webSocket() { return this[RES].webSocket; }
    get ok() { return this.status >= 200 && this.status < 300; }
    clone() {
      const copy = Object.create(Response.prototype);
      const headers = new Headers(this.headers);
      headers[GUARD] = this.headers[GUARD];
      copy[BODY] = cloneBody(this);
      copy[RES] = { ...this[RES], headers };
      return copy;
    }
    static json(data, init = undefined) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Value is not JSON serializable");
      const opts = init === undefined || init === null ? {} : init;
      const headers = new Headers(opts.headers);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return new Response(text, { ...opts, status: opts.status, statusText: opts.statusText, headers });
    }
    static redirect(url, status = 302) {
      const href = parseUrl(url);
      status = Number(status);
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status: ${status}`);
      const r = new Response(null, { status, headers: { location: href } });
      freeze(r.headers);
      return r;
    }
    static error() {
      const r = new Response(null);
      Object.assign(r[RES], { status: 0, type: "error" });
      freeze(r.headers);
      return r;
    }
    get [Symbol.toStringTag]() { return "Response"; }
  }

  // ---- fetch(): outbound HTTP for JavaScript functions, performed by the platform ----
  // The request goes to the runtime worker as a host call (internal.hostCall,
  // dispatch.js); the worker applies the egress policy after DNS resolution and
  // on every redirect, caps the response size and the subrequests in flight,
  // and counts the time against the function's deadline. A refused or failed
  // fetch rejects with a TypeError, as in browsers (its message says "egress"
  // when the policy refused it).
  const REDIRECTS = ["follow", "manual", "error"];
  async function outboundBody(request) {
    if (request[BODY].source === null) return null;
    return (await consume(request)).toBase64();
  }
  function inboundResponse(v) {
    const res = new Response(null);
    res[RES] = { status: v.status, statusText: v.statusText, headers: internal.headersFromPairs(v.headers),
      type: "basic", url: v.url, redirected: v.redirected, webSocket: null };
    res[BODY] = { source: v.body === null ? null : Uint8Array.fromBase64(v.body), stream: null, used: false };
    return res;
  }
  async function fetch(input, init = undefined) {
    const request = new Request(input, init);
    const redirect = REDIRECTS.includes(request.redirect) ? request.redirect : "follow";
    if (request.signal.aborted) throw new TypeError("fetch: the request was aborted");
    const reply = await internal.hostCall("fetch", {
      url: request.url,
      method: request.method,
      headers: internal.headerPairs(request.headers),
      body: await outboundBody(request),
      redirect,
    });
    if (!reply || !reply.ok) throw new TypeError("fetch failed: " + (reply ? reply.message : "no answer"));
    return inboundResponse(reply.value);
  }
  define("fetch", fetch);
  define("Headers", Headers);
  define("Request", Request);
  define("Response", Response);
})();
