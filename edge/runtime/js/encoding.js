// Encoding: TextEncoder, and TextDecoder for UTF-8, UTF-16LE/BE, the WHATWG
// single-byte encodings and x-user-defined (labels and tables: encodings.js).
// The legacy multi-byte encodings (Shift_JIS, EUC-JP, ISO-2022-JP, EUC-KR,
// GBK, gb18030, Big5) are recognised by label, but decoding them throws a
// TypeError saying so; TextEncoderStream/TextDecoderStream are in streams.js.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define, utf8Encode, toBytes } = internal;
  const utf8 = internal.utf8Stream;
  const LABELS = internal.encodingLabels;
  const SINGLE = internal.singleByte;
  delete internal.encodingLabels;
  delete internal.singleByte;

  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") { return utf8Encode(String(input)); }
    encodeInto(src, dest) {
      if (!(dest instanceof Uint8Array)) throw new TypeError("encodeInto: the destination must be a Uint8Array");
      src = String(src);
      let read = 0, written = 0;
      const room = dest.length;
      for (let i = 0; i < src.length; i++) {
        let c = src.charCodeAt(i), units = 1;
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < src.length) {
          const d = src.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); units = 2; }
        }
        if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
        const size = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (written + size > room) break;
        if (size === 1) dest[written] = c;
        else if (size === 2) { dest[written] = 0xc0 | (c >> 6); dest[written + 1] = 0x80 | (c & 63); }
        else if (size === 3) {
          dest[written] = 0xe0 | (c >> 12); dest[written + 1] = 0x80 | ((c >> 6) & 63); dest[written + 2] = 0x80 | (c & 63);
        } else {
          dest[written] = 0xf0 | (c >> 18); dest[written + 1] = 0x80 | ((c >> 12) & 63);
          dest[written + 2] = 0x80 | ((c >> 6) & 63); dest[written + 3] = 0x80 | (c & 63);
        }
        written += size; read += units; i += units - 1;
      }
      return { read, written };
    }
    get [Symbol.toStringTag]() { return "TextEncoder"; }
  }

  const invalid = (name) => new TypeError(`The encoded data was not valid ${name}`);
  const fromUnits = (units) => {
    let out = "";
    for (let i = 0; i < units.length; i += 8192) out += String.fromCharCode.apply(null, units.slice(i, i + 8192));
    return out;
  };
  // Each decoder: decode(bytes, fatal) for a chunk, end(fatal) at the end of the stream.
  function utf8Decoder() {
    let state = utf8.fresh();
    return {
      decode: (bytes, fatal) => utf8.decode(bytes, fatal, state),
      end(fatal) {
        const broken = state.need !== 0;
        state = utf8.fresh();
        if (broken && fatal) throw invalid("utf-8");
        return broken ? "\ufffd" : "";
      },
    };
  }
  function utf16Decoder(bigEndian) {
    let byte = null, lead = null;
    return {
      decode(bytes, fatal) {
        const units = [];
        for (const b of bytes) {
          if (byte === null) { byte = b; continue; }
          const unit = bigEndian ? (byte << 8) | b : (b << 8) | byte;
          byte = null;
          if (lead !== null) {
            const first = lead;
            lead = null;
            if (unit >= 0xdc00 && unit <= 0xdfff) { units.push(first, unit); continue; }
            if (fatal) throw invalid("utf-16");
            units.push(0xfffd);
          }
          if (unit >= 0xd800 && unit <= 0xdbff) lead = unit;
          else if (unit >= 0xdc00 && unit <= 0xdfff) {
            if (fatal) throw invalid("utf-16");
            units.push(0xfffd);
          } else units.push(unit);
        }
        return fromUnits(units);
      },
      end(fatal) {
        const broken = byte !== null || lead !== null;
        byte = lead = null;
        if (broken && fatal) throw invalid("utf-16");
        return broken ? "\ufffd" : "";
      },
    };
  }
  function singleByteDecoder(name) {
    const upper = SINGLE[name];
    return {
      decode(bytes, fatal) {
        const units = new Array(bytes.length);
        for (let i = 0; i < bytes.length; i++) {
          const b = bytes[i];
          const c = b < 0x80 ? b : name === "x-user-defined" ? 0xf780 + b - 0x80 : upper.charCodeAt(b - 0x80);
          if (c === 0xfffd && fatal) throw invalid(name);
          units[i] = c;
        }
        return fromUnits(units);
      },
      end: () => "",
    };
  }
  function decoderFor(name) {
    if (name === "UTF-8") return utf8Decoder();
    if (name === "UTF-16LE" || name === "UTF-16BE") return utf16Decoder(name === "UTF-16BE");
    if (name === "x-user-defined" || SINGLE[name]) return singleByteDecoder(name);
    return {
      decode() { throw new TypeError(`Decoding ${name} is not supported on this platform`); },
      end: () => "",
    };
  }
  function encodingOf(label) {
    const name = LABELS[String(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, "").toLowerCase()];
    if (!name || name === "replacement") throw new RangeError(`The encoding '${label}' is not supported`);
    return name;
  }

  class TextDecoder {
    #name; #fatal; #ignoreBOM; #decoder; #bomSeen = false;
    constructor(label = "utf-8", options = {}) {
      this.#name = encodingOf(label);
      this.#fatal = Boolean(options && options.fatal);
      this.#ignoreBOM = Boolean(options && options.ignoreBOM);
      this.#decoder = decoderFor(this.#name);
    }
    get encoding() { return this.#name.toLowerCase(); }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input, options = {}) {
      const bytes = input === undefined ? new Uint8Array(0) : toBytes(input);
      let text = this.#decoder.decode(bytes, this.#fatal);
      const stream = Boolean(options && options.stream);
      if (!stream) text += this.#decoder.end(this.#fatal);
      if (!this.#bomSeen && text.length > 0) {
        this.#bomSeen = true;
        const unicode = this.#name === "UTF-8" || this.#name.startsWith("UTF-16");
        if (unicode && !this.#ignoreBOM && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (!stream) this.#bomSeen = false;
      return text;
    }
    get [Symbol.toStringTag]() { return "TextDecoder"; }
  }
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);
})();
