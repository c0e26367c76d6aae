// The host's side of an isolate: runs batches of requests through the module's
// fetch handler and hands back finished responses (see edge/runtime/js/host.py).
//
// __edge.d(payload) is the only entry point the host calls per batch:
//   payload = [batch, forget, check, settle]
//     batch:  [[id, method, url, headerPairs, bodyKind, body, params], ...]
//             bodyKind 0 = none, 1 = text (string), 2 = bytes (base64)
//     forget: ids the host gave up on (timed out); their late results are dropped
//     check:  ids whose fate the host wants to know after an aborted batch
//     settle: [[callId, reply], ...] answers to host calls (KV, fetch)
//   returns JSON [done, collectNow, unknown, calls]
//     done:   [[id, status, headerPairs, bodyKind, body, logs, error], ...]
//             error: null, "exception" (500, stack in logs) or "memory"
//     collectNow: 1 when handlers of this batch are still pending, so the host
//             calls d() again right away (it runs after V8's microtask checkpoint)
//     unknown: the ids from `check` this isolate never started
//     calls:  [[callId, requestId, kind, args], ...] host calls made since the last
//             d() (internal.hostCall: env.KV, fetch); the host relays them to
//             the worker and hands the answers back in a later `settle`
// Results that finish later (timers, chained promises) are announced with one
// call of the host's ping function; the host then calls d() to collect them.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const BODY = internal.BODY;
  const stringify = JSON.stringify;  // captured: user code may replace globals
  const MAX_LOG_LINES = 200;
  const state = {
    module: null, env: {}, known: new Map(), done: [], stray: [], current: null,
    inTask: false, expectCollect: false, pinged: false, ping: null,
    calls: [], waiting: new Map(), nextCall: 1,
  };

  function announce() {
    if (!state.inTask && !state.expectCollect && !state.pinged && state.ping) {
      state.pinged = true;
      state.ping();
    }
  }
  // A call to the platform (KV, fetch): a promise settled by a later d().
  internal.hostCall = (kind, args) => new Promise((resolve) => {
    const id = state.nextCall++;
    let rec = state.current;
    if (!rec && state.known.size === 1) rec = state.known.values().next().value;
    if (!rec && state.known.size > 1) rec = fromAsyncStack();
    state.waiting.set(id, resolve);
    state.calls.push([id, rec ? rec.id : 0, kind, args]);
    announce();
  });

  // Which request is logging: the one running synchronously, the only one in
  // flight, or the one whose handler's async stack (awaited by a function named
  // after the request, see start()) the log call is on. Otherwise the line goes
  // to the next response that finishes.
  internal.logSink = (level, line) => {
    let rec = state.current;
    if (!rec && state.known.size === 1) rec = state.known.values().next().value;
    if (!rec && state.known.size > 1) rec = fromAsyncStack();
    const logs = rec ? rec.logs : state.stray;
    if (logs.length < MAX_LOG_LINES) logs.push([Date.now(), level, line]);
    else if (logs.length === MAX_LOG_LINES) logs.push([Date.now(), "warning", "[edge] further log lines dropped"]);
  };

  function fromAsyncStack() {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 100;
    const stack = String(new Error().stack);
    Error.stackTraceLimit = limit;
    const match = /__edge_request_(\d+)/.exec(stack);
    return match ? state.known.get(Number(match[1])) : undefined;
  }

  function describe(v) {
    if (v === undefined) return "undefined";
    if (v === null) return "null";
    return typeof v === "object" ? (v.constructor && v.constructor.name) || "an object" : typeof v;
  }
  function errorText(err) {
    if (err instanceof Error) return err.stack || String(err);
    try { return "Uncaught " + internal.inspect(err); } catch { return "Uncaught exception"; }
  }

  function encodeBody(body) {
    if (body === null || body === undefined) return [0, ""];
    if (typeof body === "string") return [1, body];
    return [2, body.toBase64()];
  }
  function finish(rec, res, err, failed) {
    if (!state.known.has(rec.id)) return;
    state.known.delete(rec.id);
    const prev = state.current;
    state.current = rec;
    let out;
    if (!failed && !(res instanceof Response)) {
      failed = true;
      err = new TypeError(`fetch handler returned ${describe(res)}, expected a Response`);
    }
    if (failed) {
      rec.logs.push([Date.now(), "error", errorText(err)]);
      const oom = err instanceof RangeError && /allocation failed/.test(err.message);
      out = [rec.id, 500, [["content-type", "text/plain;charset=UTF-8"]], 1, "Internal Server Error", null,
        oom ? "memory" : "exception"];
    } else {
      const [kind, body] = encodeBody(res[BODY]);
      const status = res.type === "error" ? 502 : res.status;
      out = [rec.id, status, internal.headerPairs(res.headers), kind, body, null, null];
    }
    if (state.stray.length) { rec.logs.unshift(...state.stray); state.stray = []; }
    out[5] = rec.logs;
    state.current = prev;
    state.done.push(out);
    announce();
  }

  function makeCtx(params) {
    return {
      params,
      waitUntil(p) {
        Promise.resolve(p).catch((e) => internal.logSink("error", "waitUntil: " + errorText(e)));
      },
      passThroughOnException() {},
    };
  }
  function decodeBody(kind, body) {
    if (kind === 1) return body;
    if (kind === 2) return Uint8Array.fromBase64(body);
    return null;
  }

  // Returns true when the handler is still pending after its synchronous part.
  function start(item) {
    const [id, method, url, headers, kind, body, params] = item;
    const rec = { id, logs: [] };
    state.known.set(id, rec);
    state.current = rec;
    let result;
    try {
      const request = internal.makeRequest(method, url, headers, decodeBody(kind, body), {});
      result = state.module.fetch(request, state.env, makeCtx(params));
    } catch (e) {
      finish(rec, null, e, true);
      return false;
    } finally {
      state.current = null;
    }
    if (result && typeof result.then === "function") {
      const name = `__edge_request_${id}`;
      ({
        async [name]() {
          try { finish(rec, await result, null, false); } catch (e) { finish(rec, null, e, true); }
        },
      })[name]();
      return true;
    }
    finish(rec, result, null, false);
    return false;
  }

  function d(payload) {
    const [batch, forget, check, settle = []] = payload;
    state.inTask = true;
    state.current = null;
    let pending = 0;
    for (const id of forget) state.known.delete(id);
    for (const [id, reply] of settle) {
      const resolve = state.waiting.get(id);
      state.waiting.delete(id);
      if (resolve) { resolve(reply); pending++; }  // continues in the microtask checkpoint
    }
    for (const item of batch) if (!state.known.has(item[0]) && start(item)) pending++;
    const out = state.done;
    state.done = [];
    const finished = new Set(out.map((r) => r[0]));
    const unknown = check.filter((id) => !state.known.has(id) && !finished.has(id));
    const calls = state.calls;
    state.calls = [];
    state.expectCollect = pending > 0;
    state.pinged = false;
    state.inTask = false;
    return stringify([out, pending > 0 ? 1 : 0, unknown, calls]);
  }

  // The host puts its ping function on internal.ping right after this script;
  // setup() moves it out of reach, since user code can see __edgeInternal.
  internal.setup = (cfg) => {
    if (state.ping) return;  // once
    state.env = Object.freeze(Object.assign(Object.create(null), cfg.env, { KV: internal.makeKV() }));
    internal.seed(cfg.seed);
    state.ping = internal.ping;
    delete internal.ping;
  };
  function bind(exports, filename) {
    const mod = exports.default;
    if (!mod || typeof mod.fetch !== "function") {
      throw new TypeError(`${filename}: the default export has no fetch(request, env, ctx) method ` +
        "(expected `export default { async fetch(request, env, ctx) { ... } }`)");
    }
    state.module = mod;
  }

  // Module evaluation: the host compiles the module into internal.moduleFn (an
  // async function, so top-level await works), then calls runModule and polls
  // loadStatus (after a ping when evaluation is still pending).
  let load = { state: "idle", error: null };
  internal.runModule = (filename) => {
    const exports = {};
    const settle = (next) => { load = next; if (state.ping) state.ping(); };
    load = { state: "pending", error: null };
    internal.moduleFn.call(undefined, exports).then(() => {
      try { bind(exports, filename); settle({ state: "ok", error: null }); }
      catch (e) { settle({ state: "error", error: e.message }); }
    }, (e) => settle({ state: "error", error: errorText(e) }));
    return 0;
  };
  internal.loadStatus = () => stringify(load);

  Object.defineProperty(globalThis, "__edge", {
    value: Object.freeze({ d }), configurable: false, writable: false,
  });
})();
__edgeInternal;  // the script's value: the host sets internal.ping on it
