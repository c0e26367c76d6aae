// Files and forms: Blob, File, FormData, FileReader, and the multipart/form-data
// and urlencoded codecs that Request/Response use (internal.parseForm, internal.encodeForm).
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define, utf8Encode, toBytes } = internal;
  const BYTES = Symbol("bytes");

  function usv(s) { return String(s).toWellFormed(); }
  function partBytes(part, endings) {
    if (part instanceof Blob) return part[BYTES];
    if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) return toBytes(part).slice();
    let text = usv(part);
    if (endings === "native") text = text.replace(/\r\n|\r|\n/g, "\n");
    return utf8Encode(text);
  }
  function concat(chunks) {
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  }
  function normalizeType(type) {
    type = type === undefined ? "" : String(type);
    return /[^\x20-\x7e]/.test(type) ? "" : type.toLowerCase();
  }

  let adopting = null;
  class Blob {
    #type;
    constructor(parts = undefined, options = undefined) {
      const chunks = [];
      if (parts !== undefined) {
        if (parts === null || (typeof parts !== "object" && typeof parts !== "function") || typeof parts[Symbol.iterator] !== "function") {
          throw new TypeError("Blob: the parts must be a sequence");
        }
        const opts = options === undefined || options === null ? {} : options;
        if (typeof opts !== "object" && typeof opts !== "function") throw new TypeError("Blob: options must be an object");
        const endings = opts.endings === undefined ? "transparent" : String(opts.endings);
        if (endings !== "transparent" && endings !== "native") throw new TypeError(`Blob: invalid endings '${endings}'`);
        for (const part of parts) chunks.push(partBytes(part, endings));
        this.#type = normalizeType(opts.type);
      } else {
        if (options !== undefined && options !== null && typeof options !== "object") throw new TypeError("Blob: options must be an object");
        this.#type = normalizeType(options && options.type);
      }
      Object.defineProperty(this, BYTES, { value: adopting || concat(chunks) });
      adopting = null;
    }
    get size() { return this[BYTES].length; }
    get type() { return this.#type; }
    slice(start = 0, end = undefined, contentType = undefined) {
      const size = this.size;
      const clamp = (v, dflt) => {
        if (v === undefined) return dflt;
        v = Math.trunc(Number(v)) || 0;
        return v < 0 ? Math.max(size + v, 0) : Math.min(v, size);
      };
      const from = clamp(start, 0), to = clamp(end, size);
      return adopt(this[BYTES].slice(from, Math.max(from, to)), () => new Blob([], { type: contentType === undefined ? "" : contentType }));
    }
    async text() { return internal.utf8Decode(this[BYTES]); }
    async arrayBuffer() { return this[BYTES].slice().buffer; }
    async bytes() { return this[BYTES].slice(); }
    stream() { return internal.streamOf(this[BYTES]); }
    get [Symbol.toStringTag]() { return "Blob"; }
  }
  // A Blob (or File) over bytes the caller already owns, without a copy.
  function adopt(bytes, make) {
    adopting = bytes;
    try { return make(); } finally { adopting = null; }
  }
  internal.blobBytes = (blob) => blob[BYTES];
  // structuredClone of a Blob or File (their bytes are immutable: shared, not copied).
  internal.cloneHost = (v) => {
    if (v instanceof File) return adopt(v[BYTES], () => new File([], v.name, { type: v.type, lastModified: v.lastModified }));
    if (v instanceof Blob) return adopt(v[BYTES], () => new Blob([], { type: v.type }));
    return undefined;
  };
  internal.isBlob = (v) => v instanceof Blob;
  internal.makeBlob = (bytes, type) => adopt(bytes, () => new Blob([], { type }));

  class File extends Blob {
    #name; #lastModified;
    constructor(bits, name, options = undefined) {
      if (arguments.length < 2) throw new TypeError("File: the bits and name arguments are required");
      super(bits, options);
      this.#name = usv(name);
      const lm = options && options.lastModified !== undefined ? Number(options.lastModified) : Date.now();
      this.#lastModified = Number.isFinite(lm) ? Math.trunc(lm) : 0;
    }
    get name() { return this.#name; }
    get lastModified() { return this.#lastModified; }
    get webkitRelativePath() { return ""; }
    get [Symbol.toStringTag]() { return "File"; }
  }

  // ---- FormData ----
  const ENTRIES = Symbol("entries");
  function entryValue(value, filename) {
    if (!(value instanceof Blob)) return usv(value);
    if (value instanceof File && filename === undefined) return value;
    const name = filename !== undefined ? usv(filename) : value instanceof File ? value.name : "blob";
    const lastModified = value instanceof File ? value.lastModified : undefined;
    return adopt(value[BYTES], () => new File([], name, { type: value.type, lastModified }));
  }
  class FormData {
    constructor(form = undefined) {
      if (form !== undefined) throw new TypeError("FormData: there are no HTML forms here; construct it empty");
      this[ENTRIES] = [];
    }
    append(name, value, filename = undefined) {
      if (arguments.length < 2) throw new TypeError("FormData.append: name and value are required");
      if (arguments.length === 3 && !(value instanceof Blob)) throw new TypeError("FormData.append: a filename needs a Blob value");
      this[ENTRIES].push([usv(name), entryValue(value, filename)]);
    }
    delete(name) { name = usv(name); this[ENTRIES] = this[ENTRIES].filter(([k]) => k !== name); }
    get(name) { name = usv(name); const e = this[ENTRIES].find(([k]) => k === name); return e ? e[1] : null; }
    getAll(name) { name = usv(name); return this[ENTRIES].filter(([k]) => k === name).map(([, v]) => v); }
    has(name) { name = usv(name); return this[ENTRIES].some(([k]) => k === name); }
    set(name, value, filename = undefined) {
      if (arguments.length < 2) throw new TypeError("FormData.set: name and value are required");
      if (arguments.length === 3 && !(value instanceof Blob)) throw new TypeError("FormData.set: a filename needs a Blob value");
      name = usv(name);
      const entry = [name, entryValue(value, filename)];
      const i = this[ENTRIES].findIndex(([k]) => k === name);
      if (i < 0) { this[ENTRIES].push(entry); return; }
      this[ENTRIES][i] = entry;
      this[ENTRIES] = this[ENTRIES].filter(([k], j) => j <= i || k !== name);
    }
    // Live iteration: changes made during a loop are seen, as the spec's iterator does.
    *entries() { for (let i = 0; i < this[ENTRIES].length; i++) yield this[ENTRIES][i].slice(); }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    forEach(fn, thisArg = undefined) {
      if (typeof fn !== "function") throw new TypeError("FormData.forEach: the callback must be a function");
      for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
    }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "FormData"; }
  }

  // ---- multipart/form-data and urlencoded ----
  const escapeName = (s) => s.replace(/\r\n|\r|\n/g, "\r\n").replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
  internal.encodeForm = (form) => {
    const boundary = "----edgeFormBoundary" + Array.from(internal.randomBytes(12), (b) => b.toString(16).padStart(2, "0")).join("");
    const chunks = [];
    for (const [name, value] of form[ENTRIES]) {
      let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"`;
      if (typeof value === "string") {
        chunks.push(utf8Encode(head + "\r\n\r\n" + value.replace(/\r\n|\r|\n/g, "\r\n") + "\r\n"));
        continue;
      }
      head += `; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || "application/octet-stream"}\r\n\r\n`;
      chunks.push(utf8Encode(head), value[BYTES], utf8Encode("\r\n"));
    }
    chunks.push(utf8Encode(`--${boundary}--\r\n`));
    return { bytes: concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
  };
  function indexOf(hay, needle, from) {
    outer: for (let i = from; i <= hay.length - needle.length; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }
  function param(header, key) {
    const m = new RegExp(`(?:^|;)\\s*${key}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, "i").exec(header);
    return m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]) : null;
  }
  function parseMultipart(bytes, boundary) {
    const form = new FormData();
    const delim = utf8Encode("--" + boundary);
    let at = indexOf(bytes, delim, 0);
    if (at < 0) throw new TypeError("Failed to parse the body as multipart/form-data: no boundary found");
    for (;;) {
      at += delim.length;
      if (bytes[at] === 45 && bytes[at + 1] === 45) return form;  // "--": the end
      if (bytes[at] !== 13 || bytes[at + 1] !== 10) throw new TypeError("Failed to parse the body as multipart/form-data: malformed boundary line");
      const headEnd = indexOf(bytes, utf8Encode("\r\n\r\n"), at + 2);
      if (headEnd < 0) throw new TypeError("Failed to parse the body as multipart/form-data: unterminated part headers");
      const headers = internal.utf8Decode(bytes.subarray(at + 2, headEnd)).split("\r\n");
      const next = indexOf(bytes, utf8Encode("\r\n--" + boundary), headEnd + 4);
      if (next < 0) throw new TypeError("Failed to parse the body as multipart/form-data: missing closing boundary");
      const body = bytes.slice(headEnd + 4, next);
      let disposition = "", type = "";
      for (const line of headers) {
        const colon = line.indexOf(":");
        const key = line.slice(0, colon).trim().toLowerCase(), value = line.slice(colon + 1).trim();
        if (key === "content-disposition") disposition = value;
        if (key === "content-type") type = value;
      }
      const name = param(disposition, "name");
      if (!/^form-data\b/i.test(disposition) || name === null) {
        throw new TypeError("Failed to parse the body as multipart/form-data: a part has no form-data name");
      }
      const filename = param(disposition, "filename");
      if (filename === null) form.append(name, internal.utf8Decode(body));
      else form.append(name, new File([body], filename, { type: type || "text/plain" }));
      at = next + 2;
    }
  }
  internal.parseForm = (bytes, contentType) => {
    const type = (contentType || "").split(";")[0].trim().toLowerCase();
    if (type === "multipart/form-data") {
      const boundary = param(contentType, "boundary");
      if (!boundary) throw new TypeError("Failed to parse the body as multipart/form-data: no boundary in the content type");
      return parseMultipart(bytes, boundary);
    }
    if (type === "application/x-www-form-urlencoded") {
      const form = new FormData();
      for (const [k, v] of new URLSearchParams(internal.utf8Decode(bytes))) form.append(k, v);
      return form;
    }
    throw new TypeError(`Cannot parse a body of type '${contentType || "(none)"}' as form data; ` +
      "expected multipart/form-data or application/x-www-form-urlencoded");
  };
  internal.formEntries = (form) => form[ENTRIES];

  // ---- FileReader (the web's callback reader, which the File API tests use) ----
  class FileReader extends EventTarget {
    #state = 0; #result = null; #error = null;
    constructor() { super(); for (const e of ["loadstart", "progress", "load", "abort", "error", "loadend"]) this["on" + e] = null; }
    get readyState() { return this.#state; }
    get result() { return this.#result; }
    get error() { return this.#error; }
    #read(blob, convert) {
      if (!(blob instanceof Blob)) throw new TypeError("FileReader: the argument must be a Blob");
      if (this.#state === 1) throw new DOMException("The reader is already reading", "InvalidStateError");
      this.#state = 1; this.#result = null;
      const fire = (type) => {
        const event = new Event(type);
        if (typeof this["on" + type] === "function") this["on" + type].call(this, event);
        this.dispatchEvent(event);
      };
      queueMicrotask(() => {
        fire("loadstart");
        setTimeout(() => {
          if (this.#state !== 1) return;
          this.#result = convert(blob[BYTES], blob.type);
          this.#state = 2;
          fire("progress"); fire("load"); if (this.#state !== 1) fire("loadend");
        }, 0);
      });
    }
    readAsArrayBuffer(blob) { this.#read(blob, (b) => b.slice().buffer); }
    readAsBinaryString(blob) { this.#read(blob, (b) => Array.from(b, (x) => String.fromCharCode(x)).join("")); }
    readAsText(blob, label = "utf-8") { this.#read(blob, (b) => new TextDecoder(label).decode(b)); }
    readAsDataURL(blob) { this.#read(blob, (b, type) => `data:${type || "application/octet-stream"};base64,${b.toBase64()}`); }
    abort() { if (this.#state === 1) { this.#state = 2; this.#result = null; } }
    get [Symbol.toStringTag]() { return "FileReader"; }
  }
  for (const [k, v] of Object.entries({ EMPTY: 0, LOADING: 1, DONE: 2 })) {
    Object.defineProperty(FileReader, k, { value: v, enumerable: true });
    Object.defineProperty(FileReader.prototype, k, { value: v, enumerable: true });
  }

  define("Blob", Blob);
  define("File", File);
  define("FormData", FormData);
  define("FileReader", FileReader);
})();
