// WHATWG Streams, part 1: the queuing strategies and ReadableStream (default and
// byte streams, default and BYOB readers, async iteration, tee, from). Parts 2
// (writable.js: WritableStream, pipeTo/pipeThrough) and 3 (transform.js:
// TransformStream, the encoding and compression streams) share the helpers on
// internal.streamKit. The algorithms follow the spec's structure, names shortened.
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
      if (!transform || !(transform.writable instanceof kit.WritableStream) || !(transform.readable instanceof ReadableStream)) {
        throw new TypeError("pipeThrough needs a { writable, readable } pair");
      }
      if (this.locked) throw new TypeError("The stream is locked");
      const opts = kit.pipeOptions(options);
      if (transform.writable.locked) throw new TypeError("The writable side is locked");
      kit.pipe(this, transform.writable, opts).catch(noop);
      return transform.readable;
    }
    pipeTo(dest, options = undefined) {
      if (!branded(this, ReadableStream)) return rejected(new TypeError("pipeTo: this is not a ReadableStream"));
      if (!branded(dest, kit.WritableStream)) return rejected(new TypeError("pipeTo needs a WritableStream"));
      let opts;
      try { opts = kit.pipeOptions(options); } catch (e) { return rejected(e); }
      if (this.locked) return rejected(new TypeError("The stream is locked"));
      if (dest.locked) return rejected(new TypeError("The destination is locked"));
      return kit.pipe(this, dest, opts);
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
  // What writable.js and transform.js build on (they add to it; transform.js removes it).
  const kit = internal.streamKit = { S, noop, resolved, rejected, deferred, call, method, hwmOf, sizeOf, CLOSE,
    desired, canClose, closeController, enqueue, errorController, read, release, cancelStream, branded,
    ReadableStream, ReadableStreamDefaultReader };
  for (const C of [ReadableStream, ReadableStreamDefaultReader, ReadableStreamBYOBReader, ReadableStreamDefaultController,
    ReadableByteStreamController, CountQueuingStrategy, ByteLengthQueuingStrategy]) define(C.name, C);
})();
