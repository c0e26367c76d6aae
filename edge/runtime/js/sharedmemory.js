// No shared memory for functions: SharedArrayBuffer is removed, and WebAssembly
// refuses a shared Memory and modules that declare or import one.
//
// APPSEC: V8 counts shared memory as no isolate's, so edge/runtime/js/buffers.py
// cannot hold it to a function's memory_mb; only the V8 host's process-wide
// RLIMIT_DATA would stop it, and while a function holds that budget the app's
// other functions can hit a V8 fatal OOM that aborts the host. Functions run
// single-threaded (no Workers), so shared memory has no use in them.
//
// This file runs after every other runtime file but dispatch.js: those that need
// SharedArrayBuffer (prelude.js's timers, transform.js) capture it at load. The
// originals live only in this closure; the wrappers take their place as the
// prototypes' `constructor`, so user code cannot reach them.
(function () {
  "use strict";
  const REASON = "shared memory is not available to Edge functions: they run single-threaded";
  const { apply, construct, ownKeys } = Reflect;
  const { create, defineProperty, getOwnPropertyDescriptor, getPrototypeOf } = Object;
  const Wasm = WebAssembly;
  const original = {
    Memory: Wasm.Memory, Module: Wasm.Module, compile: Wasm.compile,
    instantiate: Wasm.instantiate, validate: Wasm.validate,
  };
  const CompileError = Wasm.CompileError;
  const Bytes = Uint8Array;
  const getter = (proto, name) => getOwnPropertyDescriptor(proto, name).get;
  const TypedArrayProto = getPrototypeOf(Bytes.prototype);
  const typedArray = {
    tag: getter(TypedArrayProto, Symbol.toStringTag), buffer: getter(TypedArrayProto, "buffer"),
    offset: getter(TypedArrayProto, "byteOffset"), length: getter(TypedArrayProto, "byteLength"),
    set: TypedArrayProto.set,
  };
  const dataView = {
    buffer: getter(DataView.prototype, "buffer"), offset: getter(DataView.prototype, "byteOffset"),
    length: getter(DataView.prototype, "byteLength"),
  };
  const bufferLength = getter(ArrayBuffer.prototype, "byteLength");
  const sharedLength = getter(SharedArrayBuffer.prototype, "byteLength");

  // Only captured functions below: user code may replace Array.prototype's methods.
  const call = (fn, self) => apply(fn, self, []);
  function hasBrand(get, value) {
    try { call(get, value); return true; } catch { return false; }
  }
  // A copy of a BufferSource's bytes (so they cannot change between the check and
  // V8's compile), or null if `source` is not one (V8 then takes or refuses it).
  function bytesOf(source) {
    let view = null;
    if (call(typedArray.tag, source) !== undefined) view = typedArray;
    else if (hasBrand(dataView.length, source)) view = dataView;
    let buffer = source, offset = 0, length;
    if (view !== null) {
      buffer = call(view.buffer, source);
      offset = call(view.offset, source);
      length = call(view.length, source);
    } else if (hasBrand(bufferLength, source)) {
      length = call(bufferLength, source);
    } else if (hasBrand(sharedLength, source)) {
      length = call(sharedLength, source);
    } else {
      return null;
    }
    const copy = new Bytes(length);
    apply(typedArray.set, copy, [new Bytes(buffer, offset, length)]);
    return copy;
  }

  // Whether a wasm binary declares (memory section, id 5) or imports (import
  // section, id 2, kind 2) a memory whose limits flags have bit 0x02, shared.
  // Throws on anything it cannot parse exactly; see refusesShared.
  function declaresShared(bytes) {
    const total = call(typedArray.length, bytes);
    if (total < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
      throw new Error("not a wasm module");
    }
    let at = 8, end = total;
    const byte = () => {
      if (at >= end) throw new Error("truncated");
      return bytes[at++];
    };
    const u32 = () => {
      let value = 0;
      for (let shift = 0; shift < 35; shift += 7) {
        const b = byte();
        value += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) return value;
      }
      throw new Error("LEB128 too long");
    };
    const skipLeb = () => {
      for (let n = 0; n < 10; n++) if (!(byte() & 0x80)) return;
      throw new Error("LEB128 too long");
    };
    const skipName = () => {
      at += u32();
      if (at > end) throw new Error("truncated");
    };
    const skipRefType = () => {
      const b = byte();
      if (b === 0x63 || b === 0x64) skipLeb();  // (ref null? heaptype)
    };
    const sharedLimits = () => {
      const flags = byte();
      skipLeb();  // minimum
      if (flags & 0x01) skipLeb();  // maximum
      if (flags & 0x08) skipLeb();  // page size (custom-page-sizes)
      return (flags & 0x02) !== 0;
    };
    const importsShared = () => {
      for (let n = u32(); n > 0; n--) {
        skipName();
        skipName();
        const kind = byte();
        if (kind === 0) skipLeb();  // function: type index
        else if (kind === 1) { skipRefType(); sharedLimits(); }  // table
        else if (kind === 2) { if (sharedLimits()) return true; }  // memory
        else if (kind === 3) { skipRefType(); byte(); }  // global: value type, mutability
        else if (kind === 4) { byte(); skipLeb(); }  // tag: attribute, type index
        else throw new Error("unknown import kind");
      }
      return false;
    };
    const memoriesShared = () => {
      for (let n = u32(); n > 0; n--) if (sharedLimits()) return true;
      return false;
    };
    while (at < total) {
      const id = byte();
      const size = u32();
      const next = at + size;
      if (next > total) throw new Error("truncated");
      end = next;
      if ((id === 2 && importsShared()) || (id === 5 && memoriesShared())) return true;
      if ((id === 2 || id === 5) && at !== next) throw new Error("section size mismatch");
      at = next;
      end = total;
    }
    return false;
  }
  // Fails closed: a binary this parser cannot read is refused if V8 would accept
  // it, and otherwise left to V8, which refuses it with its own CompileError.
  function refusesShared(bytes) {
    try { return declaresShared(bytes); } catch { return apply(original.validate, Wasm, [bytes]); }
  }
  function checked(source) {
    const bytes = bytesOf(source);
    if (bytes === null) return source;
    if (refusesShared(bytes)) throw new CompileError(REASON);
    return bytes;
  }

  function Memory(descriptor) {
    if (new.target === undefined) throw new TypeError("WebAssembly.Memory must be invoked with 'new'");
    let plain = descriptor;
    if (descriptor !== null && (typeof descriptor === "object" || typeof descriptor === "function")) {
      if (descriptor.shared) throw new TypeError(REASON);
      // `shared` is read once: V8 sees this own false, not a getter that changes its mind.
      plain = create(descriptor, { shared: { value: false } });
    }
    return construct(original.Memory, [plain], new.target);
  }
  function Module(bytes, options) {
    if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
    return construct(original.Module, [checked(bytes), options], new.target);
  }
  const wrappers = {
    Memory, Module,
    compile: async (bytes, options) => apply(original.compile, Wasm, [checked(bytes), options]),
    // A Module object (not bytes) passes as it is: it was checked when compiled.
    instantiate: async (source, imports, options) =>
      apply(original.instantiate, Wasm, [checked(source), imports, options]),
    validate(bytes, options) {
      const copy = bytesOf(bytes);
      if (copy === null) return apply(original.validate, Wasm, [bytes, options]);
      return !refusesShared(copy) && apply(original.validate, Wasm, [copy, options]);
    },
  };
  for (const name of ownKeys(wrappers)) {
    const wrapper = wrappers[name], base = original[name];
    for (const key of ownKeys(base)) {  // length, name, prototype, Module.imports/exports/...
      if (key !== "prototype" || typeof base.prototype === "object") {
        defineProperty(wrapper, key, getOwnPropertyDescriptor(base, key));
      }
    }
    if (typeof base.prototype === "object") {
      defineProperty(base.prototype, "constructor", { value: wrapper, writable: true, configurable: true });
    }
    defineProperty(Wasm, name, { ...getOwnPropertyDescriptor(Wasm, name), value: wrapper });
  }
  delete globalThis.SharedArrayBuffer;
})();
