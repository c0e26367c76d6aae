// Web APIs for edge functions, in plain JavaScript (bare V8 has none of them).
//
// Defines: TextEncoder, TextDecoder, atob, btoa, DOMException, console (captured
// per invocation), crypto (getRandomValues, randomUUID; ChaCha20 seeded by the
// host from os.urandom), structuredClone, queueMicrotask, setTimeout/setInterval,
// performance.now, navigator.userAgent,
// Headers, Request, Response, and a fetch() that explains outbound requests are
// not available. dispatch.js wires these to requests.
(function () {
  "use strict";
  const define = (name, value) => {
    const prop = Object.getOwnPropertyDescriptor(globalThis, name);
    if (prop && !prop.configurable) globalThis[name] = value;  // a `var` of mini-racer's
    else Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  };
  const internal = {};
  Object.defineProperty(globalThis, "__edgeInternal", { value: internal, configurable: true });

  // ---- DOMException ----
  class DOMException extends Error {
    constructor(message = "", name = "Error") {
      super(message);
      Object.defineProperty(this, "name", { value: name, configurable: true, writable: true });
    }
    get code() { return { InvalidCharacterError: 5, DataCloneError: 25, QuotaExceededError: 22 }[this.name] || 0; }
  }
  define("DOMException", DOMException);

  // ---- UTF-8 ----
  function utf8Encode(str) {
    const out = new Uint8Array(str.length * 3);
    let n = 0;
    for (let i = 0; i < str.length; i++) {
      let c = str.charCodeAt(i);
      if (c < 0x80) { out[n++] = c; continue; }
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < str.length) {
        const d = str.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[n++] = 0xf0 | (c >> 18); out[n++] = 0x80 | ((c >> 12) & 63);
          out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63);
          continue;
        }
      }
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); }
      else { out[n++] = 0xe0 | (c >> 12); out[n++] = 0x80 | ((c >> 6) & 63); out[n++] = 0x80 | (c & 63); }
    }
    return out.slice(0, n);
  }
  // The Encoding Standard's UTF-8 decoder (maximal-subpart replacement).
  function utf8Decode(bytes, fatal, state) {
    const units = [];
    let out = "";
    let { need, seen, cp, lower, upper } = state;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (need === 0) {
        if (b < 0x80) { units.push(b); }
        else if (b >= 0xc2 && b <= 0xdf) { need = 1; cp = b & 0x1f; }
        else if (b >= 0xe0 && b <= 0xef) {
          if (b === 0xe0) lower = 0xa0; if (b === 0xed) upper = 0x9f;
          need = 2; cp = b & 0xf;
        } else if (b >= 0xf0 && b <= 0xf4) {
          if (b === 0xf0) lower = 0x90; if (b === 0xf4) upper = 0x8f;
          need = 3; cp = b & 0x7;
        } else {
          if (fatal) throw new TypeError("The encoded data was not valid utf-8");
          units.push(0xfffd);
        }
      } else if (b < lower || b > upper) {
        if (fatal) throw new TypeError("The encoded data was not valid utf-8");
        need = seen = cp = 0; lower = 0x80; upper = 0xbf;
        units.push(0xfffd);
        i--;
      } else {
        lower = 0x80; upper = 0xbf;
        cp = (cp << 6) | (b & 0x3f);
        if (++seen === need) {
          if (cp > 0xffff) { cp -= 0x10000; units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff)); }
          else units.push(cp);
          need = seen = cp = 0;
        }
      }
      if (units.length >= 8192) { out += String.fromCharCode.apply(null, units); units.length = 0; }
    }
    Object.assign(state, { need, seen, cp, lower, upper });
    return out + String.fromCharCode.apply(null, units);
  }
  const freshState = () => ({ need: 0, seen: 0, cp: 0, lower: 0x80, upper: 0xbf });
  function toBytes(input) {
    if (input === undefined) return new Uint8Array(0);
    if (input instanceof ArrayBuffer || input instanceof SharedArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError("The provided value is not of type '(ArrayBuffer or ArrayBufferView)'");
  }
  internal.utf8Encode = utf8Encode;
  internal.utf8Decode = (bytes) => utf8Decode(bytes, false, freshState());
  internal.toBytes = toBytes;

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") { return utf8Encode(String(input)); }
    encodeInto(src, dest) {
      const bytes = utf8Encode(String(src));
      let n = Math.min(bytes.length, dest.length);
      while (n > 0 && n < bytes.length && (bytes[n] & 0xc0) === 0x80) n--;
      dest.set(bytes.subarray(0, n));
      return { read: utf8Decode(bytes.subarray(0, n), false, freshState()).length, written: n };
    }
  }
  const UTF8_LABELS = ["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"];
  class TextDecoder {
    #fatal; #ignoreBOM; #state = freshState(); #bomSeen = false;
    constructor(label = "utf-8", options = {}) {
      if (!UTF8_LABELS.includes(String(label).trim().toLowerCase())) {
        throw new RangeError(`The encoding '${label}' is not supported (only utf-8 is)`);
      }
      this.#fatal = Boolean(options.fatal);
      this.#ignoreBOM = Boolean(options.ignoreBOM);
    }
    get encoding() { return "utf-8"; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input, options = {}) {
      let text = utf8Decode(toBytes(input), this.#fatal, this.#state);
      if (!this.#bomSeen && text.length > 0) {
        this.#bomSeen = true;
        if (!this.#ignoreBOM && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (!options.stream) {
        if (this.#state.need !== 0) {
          if (this.#fatal) throw new TypeError("The encoded data was not valid utf-8");
          text += "\ufffd";
        }
        this.#state = freshState();
        this.#bomSeen = false;
      }
      return text;
    }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);

  // ---- base64 ----
  function btoa(data) {
    data = String(data);
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c > 0xff) throw new DOMException("Invalid character", "InvalidCharacterError");
      bytes[i] = c;
    }
    return bytes.toBase64();
  }
  function atob(data) {
    let s = String(data).replace(/[\t\n\f\r ]/g, "");
    if (s.length % 4 === 0) s = s.replace(/==?$/, "");
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) {
      throw new DOMException("The string to be decoded is not correctly encoded.", "InvalidCharacterError");
    }
    return binaryString(Uint8Array.fromBase64(s));
  }
  function binaryString(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return out;
  }
  define("btoa", btoa);
  define("atob", atob);

  // ---- console ----
  const MAX_LOG_CHARS = 8192;
  function inspect(v, depth, seen) {
    if (typeof v === "string") return depth === 0 ? v : JSON.stringify(v);
    if (typeof v === "bigint") return v + "n";
    if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
    if (v === null || typeof v !== "object" && typeof v !== "function") return String(v);
    if (typeof v === "function") return `[Function: ${v.name || "(anonymous)"}]`;
    if (v instanceof Error) return v.stack || String(v);
    if (seen.includes(v)) return "[Circular]";
    if (depth > 2) return Array.isArray(v) ? "[Array]" : "[Object]";
    seen = seen.concat([v]);
    const sub = (x) => inspect(x, depth + 1, seen);
    if (Array.isArray(v)) return `[ ${v.map(sub).join(", ")} ]`;
    if (v instanceof Date) return isNaN(v) ? "Invalid Date" : v.toISOString();
    if (v instanceof Map) return `Map(${v.size}) { ${[...v].map(([k, x]) => `${sub(k)} => ${sub(x)}`).join(", ")} }`;
    if (v instanceof Set) return `Set(${v.size}) { ${[...v].map(sub).join(", ")} }`;
    if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.length}) [ ${Array.from(v).slice(0, 100).join(", ")} ]`;
    if (v instanceof URL || v instanceof URLSearchParams) return `${v.constructor.name} { ${v.toString()} }`;
    const name = v.constructor && v.constructor !== Object ? v.constructor.name + " " : "";
    const keys = Object.keys(v);
    if (keys.length === 0) return name + "{}";
    return `${name}{ ${keys.map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${sub(v[k])}`).join(", ")} }`;
  }
  function format(args) {
    let out = [];
    let rest = args;
    if (typeof args[0] === "string" && args[0].includes("%")) {
      let i = 1;
      const first = args[0].replace(/%([sdifjoOc%])/g, (m, f) => {
        if (f === "%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        if (f === "s") return typeof a === "string" ? a : inspect(a, 1, []);
        if (f === "d" || f === "i") return String(f === "i" ? parseInt(a) : Number(a));
        if (f === "f") return String(parseFloat(a));
        if (f === "j") { try { return JSON.stringify(a); } catch { return "[Circular]"; } }
        if (f === "c") return "";
        return inspect(a, 1, []);
      });
      out.push(first);
      rest = args.slice(i);
    } else if (args.length) {
      out.push(inspect(args[0], 0, []));
      rest = args.slice(1);
    }
    out = out.concat(rest.map((a) => inspect(a, 0, [])));
    const line = out.join(" ");
    return line.length > MAX_LOG_CHARS ? line.slice(0, MAX_LOG_CHARS) + "… [truncated]" : line;
  }
  internal.inspect = (v) => inspect(v, 0, []);
  internal.logSink = () => {};
  const emit = (level) => (...args) => {
    let line;
    try { line = format(args); } catch (e) { line = "[unprintable: " + e + "]"; }
    internal.logSink(level, line);
  };
  const counts = new Map();
  const timers = new Map();
  const console = {
    log: emit("info"), info: emit("info"), warn: emit("warning"), error: emit("error"), debug: emit("debug"),
    trace: (...a) => emit("debug")(...a, "\n" + (new Error().stack || "").split("\n").slice(2).join("\n")),
    dir: (v) => emit("info")(v),
    table: emit("info"),
    assert: (cond, ...a) => { if (!cond) emit("error")("Assertion failed" + (a.length ? ":" : ""), ...a); },
    count: (label = "default") => { counts.set(label, (counts.get(label) || 0) + 1); emit("info")(`${label}: ${counts.get(label)}`); },
    countReset: (label = "default") => counts.delete(label),
    time: (label = "default") => timers.set(label, Date.now()),
    timeLog: (label = "default", ...a) => emit("info")(`${label}: ${Date.now() - timers.get(label)}ms`, ...a),
    timeEnd: (label = "default") => { emit("info")(`${label}: ${Date.now() - timers.get(label)}ms`); timers.delete(label); },
    group: emit("info"), groupCollapsed: emit("info"), groupEnd: () => {},
  };
  define("console", console);

  // ---- crypto: a ChaCha20 keystream keyed with 32 bytes from the host's os.urandom ----
  const rng = { key: new Uint32Array(8), nonce: new Uint32Array(3), counter: 0, buf: new Uint8Array(0), pos: 0 };
  const rotl = (x, n) => (x << n) | (x >>> (32 - n));
  function quarter(s, a, b, c, d) {
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
  }
  function chachaBlock() {
    const init = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, ...rng.key, rng.counter, ...rng.nonce]);
    const s = init.slice();
    for (let i = 0; i < 10; i++) {
      quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15);
      quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) s[i] += init[i];
    rng.counter = (rng.counter + 1) >>> 0;
    if (rng.counter === 0) rng.nonce[0]++;
    return new Uint8Array(s.buffer);
  }
  function randomBytes(n) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (rng.pos >= rng.buf.length) { rng.buf = chachaBlock(); rng.pos = 0; }
      out[i] = rng.buf[rng.pos++];
    }
    return out;
  }
  internal.seed = (b64) => {
    const bytes = Uint8Array.fromBase64(b64);
    rng.key = new Uint32Array(bytes.buffer.slice(0, 32));
    rng.nonce = new Uint32Array(bytes.buffer.slice(32, 44));
    rng.counter = 0; rng.buf = new Uint8Array(0); rng.pos = 0;
  };
  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
    Uint32Array, BigInt64Array, BigUint64Array];
  const crypto = {
    getRandomValues(array) {
      if (!INTEGER_ARRAYS.some((T) => array instanceof T)) {
        throw new DOMException("The provided ArrayBufferView is not an integer array", "TypeMismatchError");
      }
      if (array.byteLength > 65536) {
        throw new DOMException(`The ArrayBufferView's byte length (${array.byteLength}) exceeds 65536`, "QuotaExceededError");
      }
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
      return array;
    },
    randomUUID() {
      const b = randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  define("crypto", crypto);

  // ---- structuredClone, queueMicrotask ----
  function clone(v, memo) {
    if (typeof v === "function" || typeof v === "symbol") {
      throw new DOMException(`${String(v)} could not be cloned.`, "DataCloneError");
    }
    if (v === null || typeof v !== "object") return v;
    if (memo.has(v)) return memo.get(v);
    let out;
    if (v instanceof Date) out = new Date(v.getTime());
    else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
    else if (v instanceof ArrayBuffer) out = v.slice(0);
    else if (ArrayBuffer.isView(v)) {
      const buf = clone(v.buffer, memo);
      out = v instanceof DataView ? new DataView(buf, v.byteOffset, v.byteLength)
        : new v.constructor(buf, v.byteOffset, v.length);
    } else if (v instanceof Map) { out = new Map(); memo.set(v, out); for (const [k, x] of v) out.set(clone(k, memo), clone(x, memo)); return out; }
    else if (v instanceof Set) { out = new Set(); memo.set(v, out); for (const x of v) out.add(clone(x, memo)); return out; }
    else if (v instanceof Error) { out = new (globalThis[v.name] || Error)(v.message); out.stack = v.stack; }
    else if (v instanceof Boolean || v instanceof Number || v instanceof String) out = Object(v.valueOf());
    else if (Array.isArray(v)) { out = new Array(v.length); memo.set(v, out); for (const k of Object.keys(v)) out[k] = clone(v[k], memo); return out; }
    else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null && !Object.prototype.toString.call(v).endsWith("Object]")) {
        throw new DOMException(`${Object.prototype.toString.call(v)} could not be cloned.`, "DataCloneError");
      }
      out = {};
      memo.set(v, out);
      for (const k of Object.keys(v)) out[k] = clone(v[k], memo);
      return out;
    }
    memo.set(v, out);
    return out;
  }
  const timeOrigin = Date.now();
  define("performance", { timeOrigin, now: () => Date.now() - timeOrigin });
  define("navigator", { userAgent: "edge-functions" });
  define("structuredClone", (value) => clone(value, new Map()));
  define("queueMicrotask", (fn) => { Promise.resolve().then(fn); });

  // ---- timers (replacing mini-racer's, which throws for a delay of 0) ----
  // Atomics.waitAsync with a positive timeout resolves from a V8 task, so a
  // callback always runs after the current microtasks, as on the web.
  const timerIds = new Set();
  let nextTimer = 1;
  function arm(id, fn, delay, args, repeat) {
    const view = new Int32Array(new SharedArrayBuffer(4));
    Atomics.waitAsync(view, 0, 0, Math.max(delay, repeat ? 1 : 0.001)).value.then(() => {
      if (!timerIds.has(id)) return;
      if (repeat) arm(id, fn, delay, args, repeat); else timerIds.delete(id);
      try { fn(...args); } catch (e) { internal.logSink("error", "Uncaught (in timer) " + (e && e.stack || e)); }
    });
  }
  function startTimer(fn, delay, args, repeat) {
    if (typeof fn !== "function") throw new TypeError("The callback must be a function");
    const id = nextTimer++;
    timerIds.add(id);
    arm(id, fn, Math.max(0, Number(delay) || 0), args, repeat);
    return id;
  }
  define("setTimeout", (fn, delay, ...args) => startTimer(fn, delay, args, false));
  define("setInterval", (fn, delay, ...args) => startTimer(fn, delay, args, true));
  define("clearTimeout", (id) => { timerIds.delete(id); });
  define("clearInterval", (id) => { timerIds.delete(id); });

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
