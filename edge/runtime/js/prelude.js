// Web APIs for edge functions, in plain JavaScript (bare V8 has none of them).
//
// This first file defines the shared pieces: DOMException (and QuotaExceededError),
// UTF-8, atob/btoa, console (captured per invocation), the random bytes behind
// crypto.getRandomValues/randomUUID (a ChaCha20 keystream keyed by the host from
// os.urandom), structuredClone, queueMicrotask, setTimeout/setInterval,
// performance.now, navigator.userAgent and self, plus `internal` (__edgeInternal),
// where the later files (modules.RUNTIME_FILES, in order) share what they need.
// dispatch.js, last, wires them to requests.
(function () {
  "use strict";
  const define = (name, value) => {
    const prop = Object.getOwnPropertyDescriptor(globalThis, name);
    if (prop && !prop.configurable) globalThis[name] = value;  // a `var` of mini-racer's
    else Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  };
  const internal = {};
  // Captured: sharedmemory.js removes the global (and this closure never hands one out).
  const SharedArrayBuffer = globalThis.SharedArrayBuffer;
  Object.defineProperty(globalThis, "__edgeInternal", { value: internal, configurable: true });

  // ---- DOMException ----
  class DOMException extends Error {
    constructor(message = "", name = "Error") {
      super(message);
      Object.defineProperty(this, "name", { value: name, configurable: true, writable: true });
    }
    get code() { return LEGACY_CODES[this.name] || 0; }
  }
  const LEGACY_CODES = { IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
    NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12,
    InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18,
    NetworkError: 19, AbortError: 20, URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23,
    InvalidNodeTypeError: 24, DataCloneError: 25 };
  ["INDEX_SIZE_ERR", "DOMSTRING_SIZE_ERR", "HIERARCHY_REQUEST_ERR", "WRONG_DOCUMENT_ERR", "INVALID_CHARACTER_ERR",
    "NO_DATA_ALLOWED_ERR", "NO_MODIFICATION_ALLOWED_ERR", "NOT_FOUND_ERR", "NOT_SUPPORTED_ERR", "INUSE_ATTRIBUTE_ERR",
    "INVALID_STATE_ERR", "SYNTAX_ERR", "INVALID_MODIFICATION_ERR", "NAMESPACE_ERR", "INVALID_ACCESS_ERR", "VALIDATION_ERR",
    "TYPE_MISMATCH_ERR", "SECURITY_ERR", "NETWORK_ERR", "ABORT_ERR", "URL_MISMATCH_ERR", "QUOTA_EXCEEDED_ERR",
    "TIMEOUT_ERR", "INVALID_NODE_TYPE_ERR", "DATA_CLONE_ERR"].forEach((constant, i) => {
    Object.defineProperty(DOMException, constant, { value: i + 1, enumerable: true });
    Object.defineProperty(DOMException.prototype, constant, { value: i + 1, enumerable: true });
  });
  class QuotaExceededError extends DOMException {
    #quota; #requested;
    constructor(message = "", options = {}) {
      super(message, "QuotaExceededError");
      this.#quota = options.quota === undefined ? null : Number(options.quota);
      this.#requested = options.requested === undefined ? null : Number(options.requested);
    }
    get quota() { return this.#quota; }
    get requested() { return this.#requested; }
  }
  define("DOMException", DOMException);
  define("QuotaExceededError", QuotaExceededError);

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
  internal.utf8Stream = { decode: utf8Decode, fresh: freshState };
  internal.toBytes = toBytes;

  internal.define = define;

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
  internal.randomBytes = randomBytes;

  // ---- structuredClone, queueMicrotask ----
  const ERROR_TYPES = ["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError"];
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
    else if (v instanceof Error) {
      const Ctor = ERROR_TYPES.includes(v.name) ? globalThis[v.name] : Error;
      out = Object.hasOwn(v, "message") ? new Ctor(String(v.message)) : new Ctor();
      if (v.stack !== undefined) out.stack = v.stack;
    }
    else if (v instanceof Boolean || v instanceof Number || v instanceof String) out = Object(v.valueOf());
    else if (Object.prototype.toString.call(v) === "[object BigInt]" && typeof v.valueOf() === "bigint") out = Object(v.valueOf());
    else if (internal.cloneHost && (out = internal.cloneHost(v)) !== undefined) { /* Blob, File */ }
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
  define("self", globalThis);
  define("structuredClone", (value) => clone(value, new Map()));
  define("queueMicrotask", (fn) => { Promise.resolve().then(fn); });

  // ---- timers (replacing mini-racer's, which throws for a delay of 0) ----
  // Atomics.waitAsync with a positive timeout resolves from a V8 task, so a
  // callback always runs after the current microtasks, as on the web. All timers
  // wait on one cell, which nothing notifies: V8 counts shared memory as no
  // isolate's (see sharedmemory.js), so timers must not allocate it.
  // APPSEC: waitAsync is captured, as user code could replace it to get the cell's
  // buffer, and with it the SharedArrayBuffer constructor.
  const timerCell = new Int32Array(new SharedArrayBuffer(4));
  const waitAsync = Atomics.waitAsync;
  const timerIds = new Set();
  let nextTimer = 1;
  function arm(id, fn, delay, args, repeat) {
    waitAsync(timerCell, 0, 0, Math.max(delay, repeat ? 1 : 0.001)).value.then(() => {
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

})();
