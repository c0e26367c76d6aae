// WHATWG Streams, part 2: WritableStream and piping (pipeTo/pipeThrough); see streams.js.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define, toBytes } = internal;
  const kit = internal.streamKit;
  const { S, noop, resolved, rejected, deferred, call, method, hwmOf, sizeOf, CLOSE, desired, canClose,
    closeController, enqueue, errorController, read, release, cancelStream, ReadableStream,
    ReadableStreamDefaultReader } = kit;
  function pipeOptions(options) {
    const o = options === undefined || options === null ? {} : options;
    const out = { preventAbort: Boolean(o.preventAbort), preventCancel: Boolean(o.preventCancel),
      preventClose: Boolean(o.preventClose), signal: o.signal };
    if (out.signal !== undefined && !(out.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
    return out;
  }
  function pipe(source, dest, options) {
    const { preventClose, preventAbort, preventCancel, signal } = options;
    const reader = new ReadableStreamDefaultReader(source);
    const writer = new WritableStreamDefaultWriter(dest);
    source[S].disturbed = true;
    const done = deferred();
    let shuttingDown = false, currentWrite = resolved();
    const finalize = (error, isError) => {
      release(reader);
      writerRelease(writer);
      if (signal && abortListener) signal.removeEventListener("abort", abortListener);
      if (isError) done.reject(error); else done.resolve(undefined);
    };
    const shutdown = (action, error, isError) => {
      if (shuttingDown) return;
      shuttingDown = true;
      const waitWrites = () => dest[S].state === "writable" && !closeQueuedOrInFlight(dest) ? currentWrite.then(noop, noop) : resolved();
      const run = () => waitWrites().then(() => (action ? action() : undefined)).then(
        () => finalize(error, isError), (e) => finalize(e, true));
      run();
    };
    let abortListener = null;
    if (signal) {
      abortListener = () => {
        const error = signal.reason;
        const actions = [];
        if (!preventAbort) actions.push(() => (dest[S].state === "writable" ? abortWritable(dest, error) : resolved()));
        if (!preventCancel) actions.push(() => (source[S].state === "readable" ? cancelStream(source, error) : resolved()));
        shutdown(() => Promise.all(actions.map((a) => a())), error, true);
      };
      if (signal.aborted) { abortListener(); return done.promise; }
      signal.addEventListener("abort", abortListener);
    }
    const checkStates = () => {
      const ss = source[S], ds = dest[S];
      if (ss.state === "errored") {
        if (!preventAbort) shutdown(() => abortWritable(dest, ss.error), ss.error, true);
        else shutdown(null, ss.error, true);
        return true;
      }
      if (ds.state === "errored" || ds.state === "erroring") {
        const e = ds.error;
        if (!preventCancel) shutdown(() => cancelStream(source, e), e, true);
        else shutdown(null, e, true);
        return true;
      }
      if (ss.state === "closed") {
        if (!preventClose) shutdown(() => writerCloseWithErrorPropagation(writer), undefined, false);
        else shutdown(null, undefined, false);
        return true;
      }
      if (closeQueuedOrInFlight(dest) || ds.state === "closed") {
        const e = new TypeError("The destination was closed");
        if (!preventCancel) shutdown(() => cancelStream(source, e), e, true);
        else shutdown(null, e, true);
        return true;
      }
      return false;
    };
    const loop = () => {
      if (shuttingDown || checkStates()) return;
      writer[S].ready.promise.then(() => {
        if (shuttingDown || checkStates()) return;
        return read(reader).then(({ value, done: end }) => {
          if (end) { checkStates(); return; }
          currentWrite = writerWrite(writer, value);
          currentWrite.catch(noop);
          loop();
        }, () => { checkStates(); });
      }, () => { checkStates(); });
    };
    reader[S].closed.promise.then(() => { if (!shuttingDown) checkStates(); }, () => { if (!shuttingDown) checkStates(); });
    writer[S].closed.promise.then(noop, () => { if (!shuttingDown) checkStates(); });
    queueMicrotask(loop);
    return done.promise;
  }


  // ---- WritableStream ----
  class WritableStreamDefaultController {
    constructor(key) { if (key !== S) throw new TypeError("Illegal constructor"); }
    get signal() { return this[S].abort.signal; }
    error(e = undefined) {
      const c = this[S];
      if (c.stream[S].state === "writable") errorWritableController(c, e);
    }
    get [Symbol.toStringTag]() { return "WritableStreamDefaultController"; }
  }
  class WritableStream {
    constructor(sink = undefined, strategy = undefined) {
      const strat = strategy === undefined ? {} : strategy;
      if (strat === null || typeof strat !== "object") throw new TypeError("The strategy must be an object");
      const size = sizeOf(strat), hwm = hwmOf(strat, 1);
      const snk = sink === undefined || sink === null ? {} : sink;
      if (snk.type !== undefined) throw new RangeError("Invalid type");
      const start = method(snk, "start"), write = method(snk, "write"), close = method(snk, "close"), abort = method(snk, "abort");
      this[S] = { state: "writable", error: undefined, writer: null, controller: null, writes: [], inFlightWrite: null,
        closeRequest: null, inFlightClose: null, pendingAbort: null, backpressure: false };
      const controller = new WritableStreamDefaultController(S);
      const c = controller[S] = { stream: this, queue: [], total: 0, started: false, hwm, size,
        write: (chunk) => call(write, snk, [chunk, controller]), close: () => call(close, snk, []),
        abortAlg: (r) => call(abort, snk, [r]), abort: new AbortController() };
      this[S].controller = c;
      this[S].backpressure = c.hwm - c.total <= 0;
      const started = start ? Reflect.apply(start, snk, [controller]) : undefined;
      resolved(started).then(() => { c.started = true; advance(c); }, (e) => { c.started = true; dealWithRejection(this, e); });
    }
    get locked() { return this[S].writer !== null; }
    abort(reason = undefined) {
      if (this.locked) return rejected(new TypeError("The stream is locked to a writer"));
      return abortWritable(this, reason);
    }
    close() {
      if (this.locked) return rejected(new TypeError("The stream is locked to a writer"));
      if (closeQueuedOrInFlight(this)) return rejected(new TypeError("The stream is already closing"));
      return closeWritable(this);
    }
    getWriter() { return new WritableStreamDefaultWriter(this); }
    get [Symbol.toStringTag]() { return "WritableStream"; }
  }
  const closeQueuedOrInFlight = (stream) => stream[S].closeRequest !== null || stream[S].inFlightClose !== null;
  function abortWritable(stream, reason) {
    const s = stream[S];
    if (s.state === "closed" || s.state === "errored") return resolved();
    s.controller.abort.abort(reason);
    if (s.state === "closed" || s.state === "errored") return resolved();
    if (s.pendingAbort) return s.pendingAbort.d.promise;
    let wasAlreadyErroring = false;
    if (s.state === "erroring") { wasAlreadyErroring = true; reason = undefined; }
    const d = deferred();
    s.pendingAbort = { d, reason, wasAlreadyErroring };
    if (!wasAlreadyErroring) startErroring(stream, reason);
    return d.promise;
  }
  function closeWritable(stream) {
    const s = stream[S];
    if (s.state === "closed" || s.state === "errored") return rejected(new TypeError("The stream is closed or errored"));
    const d = deferred();
    s.closeRequest = d;
    if (s.writer && s.backpressure && s.state === "writable") s.writer[S].ready.resolve();
    const c = s.controller;
    c.queue.push([CLOSE, 0]);
    advance(c);
    return d.promise;
  }
  function startErroring(stream, reason) {
    const s = stream[S];
    s.state = "erroring"; s.error = reason;
    if (s.writer) rejectReady(s.writer, reason);
    if (!s.inFlightWrite && !s.inFlightClose && s.controller.started) finishErroring(stream);
  }
  function finishErroring(stream) {
    const s = stream[S];
    s.state = "errored";
    const c = s.controller;
    c.queue = []; c.total = 0;
    for (const w of s.writes.splice(0)) w.reject(s.error);
    const abort = s.pendingAbort;
    if (!abort) { rejectCloseAndClosed(stream); return; }
    s.pendingAbort = null;
    if (abort.wasAlreadyErroring) { abort.d.reject(s.error); rejectCloseAndClosed(stream); return; }
    c.abortAlg(abort.reason).then(() => { abort.d.resolve(); rejectCloseAndClosed(stream); },
      (e) => { abort.d.reject(e); rejectCloseAndClosed(stream); });
  }
  function rejectCloseAndClosed(stream) {
    const s = stream[S];
    if (s.closeRequest) { s.closeRequest.reject(s.error); s.closeRequest = null; }
    if (s.writer) s.writer[S].closed.reject(s.error);
  }
  function dealWithRejection(stream, e) {
    if (stream[S].state === "writable") startErroring(stream, e);
    else finishErroring(stream);
  }
  function errorWritableController(c, e) { c.write = c.close = null; startErroring(c.stream, e); }
  function updateBackpressure(stream) {
    const s = stream[S], c = s.controller;
    const bp = c.hwm - c.total <= 0;
    if (bp !== s.backpressure && s.state === "writable" && !closeQueuedOrInFlight(stream) && s.writer) {
      if (bp) s.writer[S].ready = deferred(); else s.writer[S].ready.resolve();
    }
    s.backpressure = bp;
  }
  function advance(c) {
    const stream = c.stream, s = stream[S];
    if (!c.started || s.inFlightWrite || s.inFlightClose) return;
    if (s.state === "erroring") { finishErroring(stream); return; }
    if (c.queue.length === 0) return;
    if (c.queue[0][0] === CLOSE) {
      c.queue.shift();
      s.inFlightClose = s.closeRequest; s.closeRequest = null;
      c.close().then(() => {
        s.inFlightClose.resolve(); s.inFlightClose = null;
        if (s.state === "erroring") { s.error = undefined; if (s.pendingAbort) { s.pendingAbort.d.resolve(); s.pendingAbort = null; } }
        s.state = "closed";
        if (s.writer) s.writer[S].closed.resolve();
      }, (e) => {
        s.inFlightClose.reject(e); s.inFlightClose = null;
        if (s.pendingAbort) { s.pendingAbort.d.reject(e); s.pendingAbort = null; }
        dealWithRejection(stream, e);
      });
      return;
    }
    const [value, size] = c.queue.shift();
    s.inFlightWrite = s.writes.shift();
    c.write(value).then(() => {
      s.inFlightWrite.resolve(); s.inFlightWrite = null;
      c.total -= size; if (c.queue.length === 0) c.total = 0;
      if (!closeQueuedOrInFlight(stream) && s.state === "writable") updateBackpressure(stream);
      advance(c);
    }, (e) => {
      s.inFlightWrite.reject(e); s.inFlightWrite = null;
      dealWithRejection(stream, e);
    });
  }

  function rejectReady(writer, e) {
    const w = writer[S];
    if (w.ready.settled) w.ready = deferred();
    w.ready.reject(e);
  }
  class WritableStreamDefaultWriter {
    constructor(stream) {
      if (!(stream instanceof WritableStream)) throw new TypeError("The argument must be a WritableStream");
      if (stream.locked) throw new TypeError("The stream is already locked to a writer");
      const s = stream[S];
      this[S] = { stream, ready: deferred(), closed: deferred() };
      const w = this[S];
      s.writer = this;
      if (s.state === "writable") {
        if (!closeQueuedOrInFlight(stream) && s.backpressure) { /* pending */ } else w.ready.resolve();
      } else if (s.state === "erroring") {
        rejectReady(this, s.error);
      } else if (s.state === "closed") {
        w.ready.resolve(); w.closed.resolve();
      } else {
        rejectReady(this, s.error); w.closed.reject(s.error);
      }
    }
    get closed() { return this[S].closed.promise; }
    get ready() { return this[S].ready.promise; }
    get desiredSize() {
      const stream = this[S].stream;
      if (!stream) throw new TypeError("The writer has been released");
      const s = stream[S];
      if (s.state === "errored" || s.state === "erroring") return null;
      if (s.state === "closed") return 0;
      return s.controller.hwm - s.controller.total;
    }
    abort(reason = undefined) {
      if (!this[S].stream) return rejected(new TypeError("The writer has been released"));
      return abortWritable(this[S].stream, reason);
    }
    close() {
      const stream = this[S].stream;
      if (!stream) return rejected(new TypeError("The writer has been released"));
      if (closeQueuedOrInFlight(stream)) return rejected(new TypeError("The stream is already closing"));
      return closeWritable(stream);
    }
    releaseLock() { writerRelease(this); }
    write(chunk = undefined) { return writerWrite(this, chunk); }
    get [Symbol.toStringTag]() { return "WritableStreamDefaultWriter"; }
  }
  function writerRelease(writer) {
    const w = writer[S], stream = w.stream;
    if (!stream) return;
    const e = new TypeError("The writer was released");
    rejectReady(writer, e);
    if (w.closed.settled) w.closed = deferred();
    w.closed.reject(e);
    stream[S].writer = null;
    w.stream = null;
  }
  function writerWrite(writer, chunk) {
    const stream = writer[S].stream;
    if (!stream) return rejected(new TypeError("The writer has been released"));
    const s = stream[S], c = s.controller;
    let size = 1;
    if (c.size) {
      try { size = Number(c.size(chunk)); if (!(size >= 0) || size === Infinity) throw new RangeError("Invalid chunk size"); }
      catch (e) { if (s.state === "writable") errorWritableController(c, e); size = 1; }
    }
    if (stream !== writer[S].stream) return rejected(new TypeError("The writer has been released"));
    if (s.state === "errored") return rejected(s.error);
    if (closeQueuedOrInFlight(stream) || s.state === "closed") return rejected(new TypeError("The stream is closing or closed"));
    if (s.state === "erroring") return rejected(s.error);
    const d = deferred();
    s.writes.push(d);
    c.queue.push([chunk, size]);
    c.total += size;
    if (!closeQueuedOrInFlight(stream) && s.state === "writable") updateBackpressure(stream);
    advance(c);
    return d.promise;
  }
  function writerCloseWithErrorPropagation(writer) {
    const stream = writer[S].stream, s = stream[S];
    if (closeQueuedOrInFlight(stream) || s.state === "closed") return resolved();
    if (s.state === "errored") return rejected(s.error);
    return closeWritable(stream);
  }

  Object.assign(kit, { WritableStream, WritableStreamDefaultWriter, errorWritableController, pipe, pipeOptions });
  for (const C of [WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController]) define(C.name, C);
})();
