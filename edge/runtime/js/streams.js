// WHATWG Streams: ReadableStream (default and byte streams, with default and
// BYOB readers, async iteration, tee, pipeTo/pipeThrough, from), WritableStream,
// TransformStream, the queuing strategies, TextEncoderStream/TextDecoderStream
// and CompressionStream/DecompressionStream (zlib on the host, see calls.py).
// The algorithms follow the spec's structure with its names shortened.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define, toBytes } = internal;
  const S = Symbol("stream");
  const noop = () => {};
  const resolved = (v) => Promise.resolve(v);
  const rejected = (e) => { const p = Promise.reject(e); p.catch(noop); return p; };
  function deferred() {
    const d = { settled: false };
    d.promise = new Promise((a, b) => {
      d.resolve = (v) => { d.settled = true; a(v); };
      d.reject = (e) => { d.settled = true; b(e); };
    });
    d.promise.catch(noop);
    return d;
  }
  const CLOSE = {};  // the close sentinel in a writable stream's queue
  const call = (fn, self, args, dflt) => {
    try { return resolved(fn ? Reflect.apply(fn, self, args) : dflt); } catch (e) { return rejected(e); }
  };
  function method(obj, name) {
    const fn = obj[name];
    if (fn === undefined) return undefined;
    if (typeof fn !== "function") throw new TypeError(`${name} must be a function`);
    return fn;
  }

  // ---- queuing strategies ----
  function hwmOf(strategy, dflt) {
    const hwm = strategy.highWaterMark;
    if (hwm === undefined) return dflt;
    const n = Number(hwm);
    if (Number.isNaN(n) || n < 0) throw new RangeError("highWaterMark must be a non-negative number");
    return n;
  }
  function sizeOf(strategy) {
    const size = strategy.size;
    if (size === undefined) return () => 1;
    if (typeof size !== "function") throw new TypeError("size must be a function");
    return (chunk) => size(chunk);
  }
  function strategyInit(init, name) {
    if (init === null || typeof init !== "object") throw new TypeError(`${name}: the argument must be an object`);
    const hwm = init.highWaterMark;
    if (hwm === undefined) throw new TypeError(`${name}: highWaterMark is required`);
    return Number(hwm);
  }
  const countSize = { size() { return 1; } }.size;
  const byteSize = { size(chunk) { return chunk.byteLength; } }.size;
  class CountQueuingStrategy {
    #hwm;
    constructor(init) { this.#hwm = strategyInit(init, "CountQueuingStrategy"); }
    get highWaterMark() { return this.#hwm; }
    get size() { return countSize; }
    get [Symbol.toStringTag]() { return "CountQueuingStrategy"; }
  }
  class ByteLengthQueuingStrategy {
    #hwm;
    constructor(init) { this.#hwm = strategyInit(init, "ByteLengthQueuingStrategy"); }
    get highWaterMark() { return this.#hwm; }
    get size() { return byteSize; }
    get [Symbol.toStringTag]() { return "ByteLengthQueuingStrategy"; }
  }
  for (const C of [CountQueuingStrategy, ByteLengthQueuingStrategy]) {
    for (const k of ["highWaterMark", "size"]) Object.defineProperty(C.prototype, k, { enumerable: true });
  }

  // ---- ReadableStream ----
  class ReadableStreamDefaultController {
    constructor(key) { if (key !== S) throw new TypeError("Illegal constructor"); }
    get desiredSize() { return desired(this[S]); }
    close() {
      const c = this[S];
      if (!canClose(c)) throw new TypeError("The stream cannot be closed");
      closeController(c);
    }
    enqueue(chunk = undefined) {
      const c = this[S];
      if (!canClose(c)) throw new TypeError("The stream cannot be enqueued to");
      enqueue(c, chunk);
    }
    error(e = undefined) { errorController(this[S], e); }
    get [Symbol.toStringTag]() { return "ReadableStreamDefaultController"; }
  }
  class ReadableByteStreamController extends ReadableStreamDefaultController {
    get byobRequest() { return null; }
    enqueue(chunk) {
      if (!ArrayBuffer.isView(chunk)) throw new TypeError("A byte stream takes ArrayBufferView chunks");
      if (chunk.byteLength === 0) throw new TypeError("The chunk must not be empty");
      super.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice());
    }
    get [Symbol.toStringTag]() { return "ReadableByteStreamController"; }
  }
  function desired(c) {
    const st = c.stream[S].state;
    if (st === "errored") return null;
    if (st === "closed") return 0;
    return c.hwm - c.total;
  }
  const canClose = (c) => !c.closeRequested && c.stream[S].state === "readable";
  function closeController(c) {
    c.closeRequested = true;
    if (c.queue.length === 0) { clearAlgorithms(c); closeStream(c.stream); }
  }
  function clearAlgorithms(c) { c.pull = c.cancel = null; c.size = () => 1; }
  function enqueue(c, chunk) {
    const stream = c.stream, r = stream[S].reader;
    if (r && r[S].requests.length > 0) {
      r[S].requests.shift().chunk(chunk);
    } else {
      let size;
      try { size = c.size(chunk); size = Number(size); if (!(size >= 0) || size === Infinity) throw new RangeError("Invalid chunk size"); }
      catch (e) { errorController(c, e); throw e; }
      c.queue.push([chunk, size]);
      c.total += size;
    }
    pullIfNeeded(c);
  }
  function errorController(c, e) {
    if (c.stream[S].state !== "readable") return;
    c.queue = []; c.total = 0;
    clearAlgorithms(c);
    errorStream(c.stream, e);
  }
  function shouldPull(c) {
    const s = c.stream[S];
    if (!canClose(c) || !c.started) return false;
    if (s.reader && s.reader[S].requests.length > 0) return true;
    return desired(c) > 0;
  }
  function pullIfNeeded(c) {
    if (!shouldPull(c)) return;
    if (c.pulling) { c.pullAgain = true; return; }
    c.pulling = true;
    c.pull().then(() => {
      c.pulling = false;
      if (c.pullAgain) { c.pullAgain = false; pullIfNeeded(c); }
    }, (e) => errorController(c, e));
  }
  function setupController(stream, c, start, pull, cancel, hwm, size) {
    Object.assign(c[S] = {}, { stream, queue: [], total: 0, started: false, closeRequested: false, pulling: false,
      pullAgain: false, pull, cancel, hwm, size });
    const state = c[S];
    stream[S].controller = c;
    resolved(start()).then(() => { state.started = true; pullIfNeeded(state); }, (e) => errorController(state, e));
  }
  function readFromController(c, request) {
    const s = c.stream[S];
    if (c.queue.length > 0) {
      const [chunk, size] = c.queue.shift();
      c.total -= size;
      if (c.queue.length === 0) c.total = 0;
      if (c.closeRequested && c.queue.length === 0) { clearAlgorithms(c); closeStream(c.stream); }
      else pullIfNeeded(c);
      request.chunk(chunk);
    } else {
      s.reader[S].requests.push(request);
      pullIfNeeded(c);
    }
  }
  function closeStream(stream) {
    const s = stream[S];
    s.state = "closed";
    const r = s.reader;
    if (!r) return;
    r[S].closed.resolve();
    for (const req of r[S].requests.splice(0)) req.close();
  }
  function errorStream(stream, e) {
    const s = stream[S];
    s.state = "errored"; s.error = e;
    const r = s.reader;
    if (!r) return;
    r[S].closed.reject(e);
    for (const req of r[S].requests.splice(0)) req.error(e);
  }
  function cancelStream(stream, reason) {
    const s = stream[S];
    s.disturbed = true;
    if (s.state === "closed") return resolved(undefined);
    if (s.state === "errored") return rejected(s.error);
    closeStream(stream);
    const c = s.controller[S];
    c.queue = []; c.total = 0;
    const cancel = c.cancel;
    clearAlgorithms(c);
    return (cancel ? cancel(reason) : resolved()).then(() => undefined);
  }

  class ReadableStream {
    constructor(source = undefined, strategy = undefined) {
      const strat = strategy === undefined ? {} : strategy;
      if (strat === null || typeof strat !== "object") throw new TypeError("The strategy must be an object");
      const size = strat.size, hwmRaw = strat.highWaterMark;
      const src = source === undefined || source === null ? {} : source;
      if (typeof src !== "object" && typeof src !== "function") throw new TypeError("The underlying source must be an object");
      const start = method(src, "start"), pull = method(src, "pull"), cancel = method(src, "cancel");
      const type = src.type === undefined ? undefined : String(src.type);
      this[S] = { state: "readable", reader: null, error: undefined, disturbed: false, controller: null, bytes: type === "bytes" };
      if (type !== undefined && type !== "bytes") throw new RangeError(`Invalid type '${type}'`);
      if (type === "bytes" && size !== undefined) throw new RangeError("A byte stream cannot have a size function");
      const hwm = hwmOf({ highWaterMark: hwmRaw }, type === "bytes" ? 0 : 1);
      const controller = type === "bytes" ? new ReadableByteStreamController(S) : new ReadableStreamDefaultController(S);
      const sizeFn = sizeOf({ size });
      setupController(this, controller, () => (start ? Reflect.apply(start, src, [controller]) : undefined),
        () => call(pull, src, [controller]), (r) => call(cancel, src, [r]), hwm, sizeFn);
    }
    get locked() { return this[S].reader !== null; }
    cancel(reason = undefined) {
      if (this.locked) return rejected(new TypeError("The stream is locked to a reader"));
      return cancelStream(this, reason);
    }
    getReader(options = undefined) {
      const mode = options && options.mode !== undefined ? String(options.mode) : undefined;
      if (mode === undefined) return new ReadableStreamDefaultReader(this);
      if (mode !== "byob") throw new TypeError(`Invalid reader mode '${mode}'`);
      return new ReadableStreamBYOBReader(this);
    }
    pipeThrough(transform, options = undefined) {
      if (!transform || !(transform.writable instanceof WritableStream) || !(transform.readable instanceof ReadableStream)) {
        throw new TypeError("pipeThrough needs a { writable, readable } pair");
      }
      if (this.locked) throw new TypeError("The stream is locked");
      const opts = pipeOptions(options);
      if (transform.writable.locked) throw new TypeError("The writable side is locked");
      pipe(this, transform.writable, opts).catch(noop);
      return transform.readable;
    }
    pipeTo(dest, options = undefined) {
      if (!branded(this, ReadableStream)) return rejected(new TypeError("pipeTo: this is not a ReadableStream"));
      if (!branded(dest, WritableStream)) return rejected(new TypeError("pipeTo needs a WritableStream"));
      let opts;
      try { opts = pipeOptions(options); } catch (e) { return rejected(e); }
      if (this.locked) return rejected(new TypeError("The stream is locked"));
      if (dest.locked) return rejected(new TypeError("The destination is locked"));
      return pipe(this, dest, opts);
    }
    tee() { return tee(this); }
    values(options = undefined) { return iterate(this, Boolean(options && options.preventCancel)); }
    [Symbol.asyncIterator](options = undefined) { return this.values(options); }
    static from(iterable) {
      if (iterable instanceof ReadableStream) return iterable;
      const it = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]();
      return new ReadableStream({
        async pull(c) { const { value, done } = await it.next(); if (done) c.close(); else c.enqueue(value); },
        async cancel(reason) { if (typeof it.return === "function") await it.return(reason); },
      }, { highWaterMark: 0 });
    }
    get [Symbol.toStringTag]() { return "ReadableStream"; }
  }

  function acquire(reader, stream) {
    if (!(stream instanceof ReadableStream)) throw new TypeError("The argument must be a ReadableStream");
    if (stream.locked) throw new TypeError("The stream is already locked to a reader");
    const s = stream[S];
    reader[S] = { stream, requests: [], closed: deferred() };
    s.reader = reader;
    if (s.state === "closed") reader[S].closed.resolve();
    if (s.state === "errored") reader[S].closed.reject(s.error);
  }
  function release(reader) {
    const r = reader[S], stream = r.stream;
    if (!stream) return;
    const e = new TypeError("The reader was released");
    if (stream[S].state === "readable") r.closed.reject(e);
    else { r.closed = deferred(); r.closed.reject(e); }
    for (const req of r.requests.splice(0)) req.error(e);
    stream[S].reader = null;
    r.stream = null;
  }
  function read(reader) {
    const r = reader[S];
    if (!r.stream) return rejected(new TypeError("The reader has been released"));
    const s = r.stream[S];
    s.disturbed = true;
    const d = deferred();
    const request = {
      chunk: (value) => d.resolve({ value, done: false }),
      close: () => d.resolve({ value: undefined, done: true }),
      error: (e) => d.reject(e),
    };
    if (s.state === "closed") request.close();
    else if (s.state === "errored") request.error(s.error);
    else readFromController(s.controller[S], request);
    return d.promise;
  }
  class ReadableStreamDefaultReader {
    constructor(stream) { acquire(this, stream); }
    get closed() { return this[S].closed.promise; }
    read() { return read(this); }
    releaseLock() { release(this); }
    cancel(reason = undefined) {
      if (!this[S].stream) return rejected(new TypeError("The reader has been released"));
      return cancelStream(this[S].stream, reason);
    }
    get [Symbol.toStringTag]() { return "ReadableStreamDefaultReader"; }
  }
  class ReadableStreamBYOBReader extends ReadableStreamDefaultReader {
    constructor(stream) {
      if (!(stream instanceof ReadableStream) || !stream[S].bytes) throw new TypeError("A BYOB reader needs a byte stream");
      super(stream);
      this[S].leftover = null;
    }
    // Fills `view` from the next chunk; bytes that do not fit wait for the next read.
    async read(view) {
      if (!ArrayBuffer.isView(view) || view.byteLength === 0) throw new TypeError("read() needs a non-empty ArrayBufferView");
      let chunk = this[S].leftover;
      this[S].leftover = null;
      if (!chunk) {
        const { value, done } = await read(this);
        if (done) return { value: new view.constructor(view.buffer, view.byteOffset, 0), done: true };
        chunk = value;
      }
      const target = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      const n = Math.min(target.length, chunk.length);
      target.set(chunk.subarray(0, n));
      if (n < chunk.length) this[S].leftover = chunk.subarray(n);
      const per = view.BYTES_PER_ELEMENT || 1;
      return { value: new view.constructor(view.buffer, view.byteOffset, Math.floor(n / per)), done: false };
    }
    get [Symbol.toStringTag]() { return "ReadableStreamBYOBReader"; }
  }

  const AsyncIteratorProto = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
  function iterate(stream, preventCancel) {
    const reader = new ReadableStreamDefaultReader(stream);
    let ongoing = null, finished = false;
    const next = () => {
      if (finished) return resolved({ value: undefined, done: true });
      const p = read(reader).then((res) => {
        if (res.done) { finished = true; release(reader); }
        return res;
      }, (e) => { finished = true; release(reader); throw e; });
      return p;
    };
    const it = Object.create(AsyncIteratorProto);
    it.next = () => (ongoing = ongoing ? ongoing.then(next, next) : next());
    it.return = (value) => {
      const finish = () => {
        if (finished) return { value, done: true };
        finished = true;
        if (!preventCancel) { const p = cancelStream(stream, value); release(reader); return p.then(() => ({ value, done: true })); }
        release(reader);
        return { value, done: true };
      };
      return (ongoing = ongoing ? ongoing.then(finish, finish) : resolved().then(finish));
    };
    return it;
  }

  // cloneForBranch2: the second branch gets structured clones of the chunks (Response.clone()).
  function tee(stream, cloneForBranch2 = false) {
    const reader = new ReadableStreamDefaultReader(stream);
    let reading = false, readAgain = false, canceled1 = false, canceled2 = false, reason1, reason2;
    let c1, c2;
    const cancelled = deferred();
    function pull() {
      if (reading) { readAgain = true; return resolved(); }
      reading = true;
      read(reader).then(({ value, done }) => {
        reading = false;
        if (done) {
          if (!canceled1) c1.close();
          if (!canceled2) c2.close();
          cancelled.resolve();
          return;
        }
        const copy = stream[S].bytes || cloneForBranch2;
        const v2 = copy && (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) ? structuredClone(value) : value;
        if (!canceled1) c1.enqueue(value);
        if (!canceled2) c2.enqueue(v2);
        if (readAgain) { readAgain = false; pull(); }
      }, () => { reading = false; });
      return resolved();
    }
    const cancelBoth = () => {
      if (canceled1 && canceled2) cancelled.resolve(cancelStream(stream, [reason1, reason2]));
      return cancelled.promise;
    };
    const b1 = new ReadableStream({ start(c) { c1 = c; }, pull, cancel(r) { canceled1 = true; reason1 = r; return cancelBoth(); } });
    const b2 = new ReadableStream({ start(c) { c2 = c; }, pull, cancel(r) { canceled2 = true; reason2 = r; return cancelBoth(); } });
    reader[S].closed.promise.catch((e) => {
      errorController(c1[S], e); errorController(c2[S], e); cancelled.resolve();
    });
    return [b1, b2];
  }

  const branded = (v, C) => v instanceof C && Object.prototype.hasOwnProperty.call(v, S);
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

  // ---- TransformStream ----
  class TransformStreamDefaultController {
    constructor(key) { if (key !== S) throw new TypeError("Illegal constructor"); }
    get desiredSize() { return desired(this[S].readableController[S]); }
    enqueue(chunk = undefined) { tsEnqueue(this[S], chunk); }
    error(e = undefined) { tsError(this[S].ts, e); }
    terminate() { tsTerminate(this[S].ts); }
    get [Symbol.toStringTag]() { return "TransformStreamDefaultController"; }
  }
  function tsEnqueue(t, chunk) {
    const rc = t.readableController[S];
    if (!canClose(rc)) throw new TypeError("The readable side cannot take more chunks");
    try { enqueue(rc, chunk); } catch (e) { tsErrorWritable(t.ts, e); throw rc.stream[S].error; }
    if (!(desired(rc) > 0) && !t.ts[S].backpressure) setBackpressure(t.ts, true);
  }
  function tsError(ts, e) {
    errorController(ts[S].readableController[S], e);
    tsErrorWritable(ts, e);
  }
  function tsErrorWritable(ts, e) {
    const t = ts[S];
    t.transform = t.flush = null;
    const wc = t.writable[S].controller;
    if (t.writable[S].state === "writable") errorWritableController(wc, e);
    if (t.backpressure) setBackpressure(ts, false);
  }
  function tsTerminate(ts) {
    const rc = ts[S].readableController[S];
    if (canClose(rc)) closeController(rc);
    tsErrorWritable(ts, new TypeError("The transform stream was terminated"));
  }
  function setBackpressure(ts, bp) {
    const t = ts[S];
    if (t.backpressureChange) t.backpressureChange.resolve();
    t.backpressureChange = deferred();
    t.backpressure = bp;
  }
  class TransformStream {
    constructor(transformer = undefined, writableStrategy = undefined, readableStrategy = undefined) {
      const tr = transformer === undefined || transformer === null ? {} : transformer;
      const ws = writableStrategy === undefined ? {} : writableStrategy, rs = readableStrategy === undefined ? {} : readableStrategy;
      const rSize = rs.size, rHwm = rs.highWaterMark, wSize = ws.size, wHwm = ws.highWaterMark;
      if (tr.readableType !== undefined) throw new RangeError("Invalid readableType");
      if (tr.writableType !== undefined) throw new RangeError("Invalid writableType");
      const start = method(tr, "start"), transform = method(tr, "transform"), flush = method(tr, "flush"), cancel = method(tr, "cancel");
      const controller = new TransformStreamDefaultController(S);
      const startDone = deferred();
      const self = this;
      const t = this[S] = { ts: this, backpressure: undefined, backpressureChange: null, controller, finish: null };
      t.transform = transform ? (chunk) => call(transform, tr, [chunk, controller])
        : (chunk) => { try { tsEnqueue(controller[S], chunk); return resolved(); } catch (e) { return rejected(e); } };
      t.flush = (ctl) => call(flush, tr, [ctl]);
      t.cancelAlg = (r) => call(cancel, tr, [r]);
      t.writable = new WritableStream({
        start: () => startDone.promise,
        write(chunk) {
          if (t.backpressure) {
            return t.backpressureChange.promise.then(() => {
              const w = t.writable[S];
              if (w.state === "erroring") throw w.error;
              return performTransform(chunk);
            });
          }
          return performTransform(chunk);
        },
        close() {
          if (t.finish) return t.finish.promise;
          const d = t.finish = deferred();
          const flushing = t.flush ? t.flush(controller) : resolved();
          t.transform = t.flush = null;
          flushing.then(() => {
            const rs2 = t.readable[S];
            if (rs2.state === "errored") { d.reject(rs2.error); return; }
            const rc = t.readableController[S];
            if (canClose(rc)) closeController(rc);
            d.resolve();
          }, (e) => { errorController(t.readableController[S], e); d.reject(e); });
          return d.promise;
        },
        abort(reason) {
          if (t.finish) return t.finish.promise;
          const d = t.finish = deferred();
          const cancelling = t.cancelAlg(reason);
          t.transform = t.flush = null;
          cancelling.then(() => {
            const rs2 = t.readable[S];
            if (rs2.state === "errored") { d.reject(rs2.error); return; }
            errorController(t.readableController[S], reason); d.resolve();
          }, (e) => { errorController(t.readableController[S], e); d.reject(e); });
          return d.promise;
        },
      }, { highWaterMark: hwmOf({ highWaterMark: wHwm }, 1), size: wSize === undefined ? undefined : sizeOf({ size: wSize }) });
      t.readable = new ReadableStream({
        start(c) { t.readableController = c; return startDone.promise; },
        pull() { setBackpressure(self, false); return t.backpressureChange.promise; },
        cancel(reason) {
          if (t.finish) return t.finish.promise;
          const d = t.finish = deferred();
          const cancelling = t.cancelAlg(reason);
          t.transform = t.flush = null;
          cancelling.then(() => {
            const w = t.writable[S];
            if (w.state === "errored") { d.reject(w.error); return; }
            if (w.state === "writable") errorWritableController(w.controller, reason);
            if (t.backpressure) setBackpressure(self, false);
            d.resolve();
          }, (e) => {
            const w = t.writable[S];
            if (w.state === "writable") errorWritableController(w.controller, e);
            if (t.backpressure) setBackpressure(self, false);
            d.reject(e);
          });
          return d.promise;
        },
      }, { highWaterMark: hwmOf({ highWaterMark: rHwm }, 0), size: rSize === undefined ? undefined : sizeOf({ size: rSize }) });
      controller[S] = { ts: this, readableController: t.readableController };
      setBackpressure(this, true);
      function performTransform(chunk) {
        const run = t.transform ? t.transform(chunk) : rejected(new TypeError("The transform stream is closed"));
        return run.catch((e) => { tsError(self, e); throw e; });
      }
      const started = start ? Reflect.apply(start, tr, [controller]) : undefined;
      resolved(started).then(() => startDone.resolve(), (e) => startDone.reject(e));
    }
    get readable() { return this[S].readable; }
    get writable() { return this[S].writable; }
    get [Symbol.toStringTag]() { return "TransformStream"; }
  }

  // ---- encoding and compression streams ----
  class TextEncoderStream {
    #ts; #pending = null;
    constructor() {
      const encoder = new TextEncoder();
      this.#ts = new TransformStream({
        transform: (chunk, c) => {
          let text = (this.#pending || "") + String(chunk);
          this.#pending = null;
          const last = text.charCodeAt(text.length - 1);
          if (last >= 0xd800 && last <= 0xdbff) { this.#pending = text.slice(-1); text = text.slice(0, -1); }
          if (text) c.enqueue(encoder.encode(text));
        },
        flush: (c) => { if (this.#pending) c.enqueue(new Uint8Array([0xef, 0xbf, 0xbd])); },
      });
    }
    get encoding() { return "utf-8"; }
    get readable() { return this.#ts.readable; }
    get writable() { return this.#ts.writable; }
    get [Symbol.toStringTag]() { return "TextEncoderStream"; }
  }
  class TextDecoderStream {
    #ts; #decoder;
    constructor(label = "utf-8", options = {}) {
      const decoder = this.#decoder = new TextDecoder(label, options);
      this.#ts = new TransformStream({
        transform(chunk, c) { const s = decoder.decode(toBytes(chunk), { stream: true }); if (s) c.enqueue(s); },
        flush(c) { const s = decoder.decode(); if (s) c.enqueue(s); },
      });
    }
    get encoding() { return this.#decoder.encoding; }
    get fatal() { return this.#decoder.fatal; }
    get ignoreBOM() { return this.#decoder.ignoreBOM; }
    get readable() { return this.#ts.readable; }
    get writable() { return this.#ts.writable; }
    get [Symbol.toStringTag]() { return "TextDecoderStream"; }
  }
  const FORMATS = ["deflate", "deflate-raw", "gzip"];
  // zlib runs on the host (calls.py); the input is gathered and (de)compressed at the end.
  function zlibStream(op, format) {
    format = String(format);
    if (!FORMATS.includes(format)) throw new TypeError(`Unsupported compression format '${format}'`);
    const chunks = [];
    return new TransformStream({
      transform(chunk) {
        if (!(chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) ||
            (ArrayBuffer.isView(chunk) && chunk.buffer instanceof SharedArrayBuffer)) {
          throw new TypeError("The chunk must be a BufferSource (not shared memory)");
        }
        chunks.push(toBytes(chunk).slice());
      },
      async flush(c) {
        const out = await internal.hostCall(op, [format, internal.concatBytes(chunks)]);
        if (out.length) c.enqueue(out);
      },
    });
  }
  class CompressionStream {
    #ts;
    constructor(format) { this.#ts = zlibStream("compress", format); }
    get readable() { return this.#ts.readable; }
    get writable() { return this.#ts.writable; }
    get [Symbol.toStringTag]() { return "CompressionStream"; }
  }
  class DecompressionStream {
    #ts;
    constructor(format) { this.#ts = zlibStream("decompress", format); }
    get readable() { return this.#ts.readable; }
    get writable() { return this.#ts.writable; }
    get [Symbol.toStringTag]() { return "DecompressionStream"; }
  }

  // A stream of one byte chunk (bodies, Blob.stream()), and reading a stream whole.
  internal.streamOf = (bytes) => new ReadableStream({
    type: "bytes",
    start(c) { if (bytes.length) c.enqueue(bytes); c.close(); },
  });
  internal.concatBytes = (chunks) => {
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  };
  internal.readAll = async (stream) => {
    const reader = new ReadableStreamDefaultReader(stream);
    const chunks = [];
    for (;;) {
      const { value, done } = await read(reader);
      if (done) break;
      if (typeof value === "string") chunks.push(internal.utf8Encode(value));
      else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) chunks.push(toBytes(value));
      else throw new TypeError("A body stream must produce Uint8Array chunks");
    }
    release(reader);
    return internal.concatBytes(chunks);
  };
  internal.isDisturbed = (stream) => stream[S].disturbed;
  internal.teeCloning = (stream) => tee(stream, true);
  internal.isReadableStream = (v) => v instanceof ReadableStream;

  for (const C of [ReadableStream, ReadableStreamDefaultReader, ReadableStreamBYOBReader, ReadableStreamDefaultController,
    ReadableByteStreamController, WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController,
    TransformStream, TransformStreamDefaultController, CountQueuingStrategy, ByteLengthQueuingStrategy,
    TextEncoderStream, TextDecoderStream, CompressionStream, DecompressionStream]) define(C.name, C);
})();
