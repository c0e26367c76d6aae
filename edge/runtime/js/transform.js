// WHATWG Streams, part 3: TransformStream, TextEncoderStream/TextDecoderStream and
// CompressionStream/DecompressionStream (zlib on the host, see calls.py); see streams.js.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const SharedArrayBuffer = globalThis.SharedArrayBuffer;  // captured: sharedmemory.js removes it
  const { define, toBytes } = internal;
  const kit = internal.streamKit;
  const { S, noop, resolved, rejected, deferred, call, method, hwmOf, sizeOf, CLOSE, desired, canClose,
    closeController, enqueue, errorController, read, release, cancelStream, ReadableStream,
    ReadableStreamDefaultReader } = kit;
  const { WritableStream, errorWritableController } = kit;
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
  // zlib runs on the host (compression.py): one zlib stream there per stream here, each
  // chunk through it as it is written. A stream dropped unfinished is dropped there too.
  const dropped = new FinalizationRegistry((sid) => { internal.localCall("zlib.drop", [sid]).catch(noop); });
  function zlibStream(mode, format) {
    format = String(format);
    if (!FORMATS.includes(format)) throw new TypeError(`Unsupported compression format '${format}'`);
    let sid = null;
    const token = {};
    const open = async () => {
      if (sid === null) { sid = await internal.localCall("zlib.open", [mode, format]); dropped.register(ts, sid, token); }
      return sid;
    };
    const ts = new TransformStream({
      async transform(chunk, c) {
        if (!(chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) ||
            (ArrayBuffer.isView(chunk) && chunk.buffer instanceof SharedArrayBuffer)) {
          throw new TypeError("The chunk must be a BufferSource (not shared memory)");
        }
        const out = await internal.localCall("zlib.push", [await open(), toBytes(chunk).slice()]);
        if (out.length) c.enqueue(out);
      },
      async flush(c) {
        const out = await internal.localCall("zlib.end", [await open()]);
        dropped.unregister(token);
        if (out.length) c.enqueue(out);
      },
      cancel() {
        if (sid !== null) { dropped.unregister(token); internal.localCall("zlib.drop", [sid]).catch(noop); }
      },
    });
    return ts;
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

  delete internal.streamKit;
  for (const C of [TransformStream, TransformStreamDefaultController, TextEncoderStream, TextDecoderStream,
    CompressionStream, DecompressionStream]) define(C.name, C);
})();
