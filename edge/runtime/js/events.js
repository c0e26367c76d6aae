// DOM events and abort: Event, CustomEvent, EventTarget, AbortController,
// AbortSignal (abort, timeout, any). The global object is an EventTarget too
// (addEventListener on self), as in a worker.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define } = internal;
  const EV = Symbol("event");

  class Event {
    constructor(type, init = undefined) {
      if (arguments.length === 0) throw new TypeError("Event: the type argument is required");
      type = String(type);
      const opts = init === undefined || init === null ? {} : init;
      if (typeof opts !== "object" && typeof opts !== "function") throw new TypeError("Event: init must be an object");
      const bubbles = Boolean(opts.bubbles), cancelable = Boolean(opts.cancelable), composed = Boolean(opts.composed);
      this[EV] = {
        type, bubbles, cancelable, composed, canceled: false, stop: false, stopNow: false, passive: false,
        target: null, current: null, phase: 0, dispatching: false, time: performance.now() || 1e-3,
      };
      const state = this[EV];
      Object.defineProperty(this, "isTrusted", { get: () => Boolean(state.trusted), enumerable: true, configurable: false });
    }
    get type() { return this[EV].type; }
    get bubbles() { return this[EV].bubbles; }
    get cancelable() { return this[EV].cancelable; }
    get composed() { return this[EV].composed; }
    get target() { return this[EV].target; }
    get srcElement() { return this[EV].target; }
    get currentTarget() { return this[EV].current; }
    get eventPhase() { return this[EV].phase; }
    get timeStamp() { return this[EV].time; }
    get defaultPrevented() { return this[EV].canceled; }
    get returnValue() { return !this[EV].canceled; }
    set returnValue(v) { if (!v) this.preventDefault(); }
    get cancelBubble() { return this[EV].stop; }
    set cancelBubble(v) { if (v) this[EV].stop = true; }
    composedPath() { return this[EV].dispatching && this[EV].current ? [this[EV].current] : []; }
    stopPropagation() { this[EV].stop = true; }
    stopImmediatePropagation() { this[EV].stop = this[EV].stopNow = true; }
    preventDefault() { const s = this[EV]; if (s.cancelable && !s.passive) s.canceled = true; }
    initEvent(type, bubbles = false, cancelable = false) {
      const s = this[EV];
      if (s.dispatching) return;
      Object.assign(s, { type: String(type), bubbles: Boolean(bubbles), cancelable: Boolean(cancelable),
        canceled: false, stop: false, stopNow: false, target: null });
    }
    get [Symbol.toStringTag]() { return "Event"; }
  }
  const PHASES = { NONE: 0, CAPTURING_PHASE: 1, AT_TARGET: 2, BUBBLING_PHASE: 3 };
  for (const [k, v] of Object.entries(PHASES)) {
    Object.defineProperty(Event, k, { value: v, enumerable: true });
    Object.defineProperty(Event.prototype, k, { value: v, enumerable: true });
  }

  class CustomEvent extends Event {
    #detail;
    constructor(type, init = undefined) {
      if (arguments.length === 0) throw new TypeError("CustomEvent: the type argument is required");
      super(type, init);
      this.#detail = init && init.detail !== undefined ? init.detail : null;
    }
    get detail() { return this.#detail; }
    initCustomEvent(type, bubbles, cancelable, detail) { this.initEvent(type, bubbles, cancelable); this.#detail = detail; }
    get [Symbol.toStringTag]() { return "CustomEvent"; }
  }

  const LISTENERS = Symbol("listeners");
  function flatten(options) {
    if (typeof options === "boolean" || options === undefined || options === null) return { capture: Boolean(options) };
    return { capture: Boolean(options.capture), once: Boolean(options.once), passive: Boolean(options.passive), signal: options.signal };
  }
  function listenersOf(target) {
    if (!target[LISTENERS]) Object.defineProperty(target, LISTENERS, { value: new Map() });
    return target[LISTENERS];
  }
  class EventTarget {
    constructor() { listenersOf(this); }
    addEventListener(type, callback, options = undefined) {
      const { capture, once, passive, signal } = flatten(options);
      if (callback === null || callback === undefined) return;
      if (typeof callback !== "function" && typeof callback !== "object") throw new TypeError("The listener must be a function or an object");
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
      if (signal && signal.aborted) return;
      const map = listenersOf(this);
      type = String(type);
      const list = map.get(type) || [];
      if (list.some((l) => l.callback === callback && l.capture === capture)) return;
      const entry = { callback, capture, once, passive, removed: false };
      list.push(entry);
      map.set(type, list);
      if (signal) signal.addEventListener("abort", () => this.removeEventListener(type, callback, { capture }));
    }
    removeEventListener(type, callback, options = undefined) {
      const { capture } = flatten(options);
      const map = listenersOf(this);
      const list = map.get(String(type));
      if (!list) return;
      const i = list.findIndex((l) => l.callback === callback && l.capture === capture);
      if (i >= 0) { list[i].removed = true; list.splice(i, 1); }
    }
    dispatchEvent(event) {
      if (!(event instanceof Event)) throw new TypeError("dispatchEvent: the argument must be an Event");
      const s = event[EV];
      if (s.dispatching) throw new DOMException("The event is already being dispatched", "InvalidStateError");
      s.dispatching = true; s.target = this; s.current = this; s.phase = 2;
      const list = (listenersOf(this).get(s.type) || []).slice();
      for (const l of list) {
        if (l.removed) continue;
        if (l.once) this.removeEventListener(s.type, l.callback, { capture: l.capture });
        s.passive = l.passive;
        try {
          if (typeof l.callback === "function") l.callback.call(this, event);
          else if (typeof l.callback.handleEvent === "function") l.callback.handleEvent(event);
        } catch (e) {
          reportError(e);
        }
        s.passive = false;
        if (s.stopNow) break;
      }
      s.dispatching = false; s.current = null; s.phase = 0; s.stop = s.stopNow = false;
      return !s.canceled;
    }
    get [Symbol.toStringTag]() { return "EventTarget"; }
  }
  function reportError(e) { internal.logSink("error", "Uncaught (in event listener) " + (e && e.stack || e)); }

  // ---- abort ----
  const SIGNAL = Symbol("signal");
  class AbortSignal extends EventTarget {
    constructor(key) {
      if (key !== SIGNAL) throw new TypeError("Illegal constructor");
      super();
      this[SIGNAL] = { aborted: false, reason: undefined, onabort: null, dependents: new Set(), sources: null };
    }
    get aborted() { return this[SIGNAL].aborted; }
    get reason() { return this[SIGNAL].reason; }
    get onabort() { return this[SIGNAL].onabort; }
    set onabort(fn) {
      const s = this[SIGNAL];
      if (s.onabortListener) this.removeEventListener("abort", s.onabortListener);
      s.onabort = typeof fn === "function" ? fn : null;
      s.onabortListener = s.onabort ? (e) => s.onabort.call(this, e) : null;
      if (s.onabortListener) this.addEventListener("abort", s.onabortListener);
    }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    static abort(reason = undefined) {
      const signal = new AbortSignal(SIGNAL);
      signal[SIGNAL].aborted = true;
      signal[SIGNAL].reason = reason === undefined ? new DOMException("signal is aborted without reason", "AbortError") : reason;
      return signal;
    }
    static timeout(ms) {
      ms = Number(ms);
      if (!Number.isFinite(ms) || ms < 0) throw new TypeError("AbortSignal.timeout: the delay must be a non-negative number");
      const signal = new AbortSignal(SIGNAL);
      setTimeout(() => abortSignal(signal, new DOMException("signal timed out", "TimeoutError")), ms);
      return signal;
    }
    static any(signals) {
      const result = new AbortSignal(SIGNAL);
      const list = Array.from(signals);
      for (const s of list) if (!(s instanceof AbortSignal)) throw new TypeError("AbortSignal.any: every item must be an AbortSignal");
      const done = list.find((s) => s.aborted);
      if (done) { result[SIGNAL].aborted = true; result[SIGNAL].reason = done.reason; return result; }
      // A composite signal depends on the sources of composite inputs (DOM spec).
      const sources = new Set();
      for (const s of list) for (const src of s[SIGNAL].sources || [s]) sources.add(src);
      result[SIGNAL].sources = [...sources];
      for (const src of sources) src[SIGNAL].dependents.add(new WeakRef(result));
      return result;
    }
    get [Symbol.toStringTag]() { return "AbortSignal"; }
  }
  function abortSignal(signal, reason) {
    const s = signal[SIGNAL];
    if (s.aborted) return;
    s.aborted = true;
    s.reason = reason === undefined ? new DOMException("signal is aborted without reason", "AbortError") : reason;
    const dependents = [];
    for (const ref of s.dependents) {
      const d = ref.deref();
      if (d && !d.aborted) { d[SIGNAL].aborted = true; d[SIGNAL].reason = s.reason; dependents.push(d); }
    }
    s.dependents.clear();
    signal.dispatchEvent(trusted("abort"));
    for (const d of dependents) d.dispatchEvent(trusted("abort"));
  }
  function trusted(type) { const e = new Event(type); e[EV].trusted = true; return e; }
  internal.abortSignal = abortSignal;
  internal.newSignal = () => new AbortSignal(SIGNAL);

  class AbortController {
    #signal = new AbortSignal(SIGNAL);
    get signal() { return this.#signal; }
    abort(reason = undefined) { abortSignal(this.#signal, reason); }
    get [Symbol.toStringTag]() { return "AbortController"; }
  }

  define("Event", Event);
  define("CustomEvent", CustomEvent);
  define("EventTarget", EventTarget);
  define("AbortSignal", AbortSignal);
  define("AbortController", AbortController);
  // The global scope is an EventTarget (self.addEventListener), as in a worker.
  const globalTarget = new EventTarget();
  for (const name of ["addEventListener", "removeEventListener", "dispatchEvent"]) {
    define(name, globalTarget[name].bind(globalTarget));
  }
})();
