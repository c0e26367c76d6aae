// crypto: getRandomValues, randomUUID and crypto.subtle.
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const { define } = internal;
  const { randomBytes, toBytes } = internal;
  // ---- crypto.subtle: the Web Crypto API over the host's `cryptography` package ----
  // This file does what the spec asks of the API (normalising algorithms, checking
  // usages and key data, holding CryptoKeys); every primitive runs on the Python
  // side of the V8 host (internal.localCall, see edge/runtime/js/webcrypto.py).
  // A secret key keeps its raw bytes here; an asymmetric key its DER (PKCS#8/SPKI).
  const NAMES = ["AES-CTR", "AES-CBC", "AES-GCM", "AES-KW", "HMAC", "SHA-1", "SHA-256", "SHA-384",
    "SHA-512", "HKDF", "PBKDF2", "RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP", "ECDSA", "ECDH",
    "Ed25519", "X25519"];
  const AES = ["AES-CTR", "AES-CBC", "AES-GCM", "AES-KW"];
  const RSA = ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP"];
  const SIGNERS = ["HMAC", "RSASSA-PKCS1-v1_5", "RSA-PSS", "ECDSA", "Ed25519"];
  const SUPPORTED = {
    digest: ["SHA-1", "SHA-256", "SHA-384", "SHA-512"],
    importKey: ["HMAC", ...AES, "PBKDF2", "HKDF", ...RSA, "ECDSA", "ECDH", "Ed25519", "X25519"],
    generateKey: ["HMAC", ...AES, ...RSA, "ECDSA", "ECDH", "Ed25519", "X25519"],
    sign: SIGNERS, verify: SIGNERS,
    encrypt: ["AES-CTR", "AES-CBC", "AES-GCM", "RSA-OAEP"], decrypt: ["AES-CTR", "AES-CBC", "AES-GCM", "RSA-OAEP"],
    deriveBits: ["PBKDF2", "HKDF", "ECDH", "X25519"],
  };
  // Usages a key may have: [secret or private, public].
  const USAGES = {
    HMAC: [["sign", "verify"]], PBKDF2: [["deriveKey", "deriveBits"]], HKDF: [["deriveKey", "deriveBits"]],
    "AES-CTR": [["encrypt", "decrypt", "wrapKey", "unwrapKey"]], "AES-CBC": [["encrypt", "decrypt", "wrapKey", "unwrapKey"]],
    "AES-GCM": [["encrypt", "decrypt", "wrapKey", "unwrapKey"]], "AES-KW": [["wrapKey", "unwrapKey"]],
    "RSASSA-PKCS1-v1_5": [["sign"], ["verify"]], "RSA-PSS": [["sign"], ["verify"]], ECDSA: [["sign"], ["verify"]],
    Ed25519: [["sign"], ["verify"]], "RSA-OAEP": [["decrypt", "unwrapKey"], ["encrypt", "wrapKey"]],
    ECDH: [["deriveKey", "deriveBits"], []], X25519: [["deriveKey", "deriveBits"], []],
  };
  const USAGE_ORDER = ["encrypt", "decrypt", "sign", "verify", "deriveKey", "deriveBits", "wrapKey", "unwrapKey"];
  const HASH_BLOCK_BITS = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };
  const fail = (name, message) => new DOMException(message, name);
  const call = (op, args) => internal.localCall(op, args);

  function bytesOf(v, what = "data") {
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return toBytes(v).slice();
    throw new TypeError(`${what} must be an ArrayBuffer or ArrayBufferView`);
  }
  function canonical(name) {
    const upper = String(name).toUpperCase();
    return NAMES.find((n) => n.toUpperCase() === upper);
  }
  function normalize(op, alg) {
    if (typeof alg === "string") alg = { name: alg };
    if (alg === null || typeof alg !== "object") throw new TypeError("Algorithm must be an object or a string");
    const given = alg.name;
    if (given === undefined) throw new TypeError("Algorithm: the name member is required");
    const name = canonical(given);
    if (!name || !SUPPORTED[op].includes(name)) {
      throw fail("NotSupportedError", `Unrecognized or unsupported algorithm '${given}' for ${op}`);
    }
    const out = { name };
    const need = (member) => {
      if (alg[member] === undefined) throw new TypeError(`${name}: the ${member} member is required`);
      return alg[member];
    };
    const num = (member) => Number(need(member));
    if (op === "digest") return out;
    if ((name === "HMAC" || RSA.includes(name)) && (op === "importKey" || op === "generateKey")) {
      out.hash = normalize("digest", need("hash"));
    }
    if (name === "HMAC" && alg.length !== undefined) out.length = Number(alg.length);
    if (AES.includes(name) && op === "generateKey") out.length = num("length");
    if (RSA.includes(name) && op === "generateKey") {
      out.modulusLength = num("modulusLength");
      out.publicExponent = bytesOf(need("publicExponent"), "publicExponent");
    }
    if ((name === "ECDSA" || name === "ECDH") && (op === "importKey" || op === "generateKey")) {
      out.namedCurve = String(need("namedCurve"));
    }
    if (name === "ECDSA" && op !== "importKey" && op !== "generateKey") out.hash = normalize("digest", need("hash"));
    if (name === "RSA-PSS" && (op === "sign" || op === "verify")) out.saltLength = num("saltLength");
    if (name === "RSA-OAEP" && alg.label !== undefined) out.label = bytesOf(alg.label, "label");
    if (name === "AES-GCM" && (op === "encrypt" || op === "decrypt")) {
      out.iv = bytesOf(need("iv"), "iv");
      if (alg.additionalData !== undefined) out.additionalData = bytesOf(alg.additionalData, "additionalData");
      out.tagLength = alg.tagLength === undefined ? 128 : Number(alg.tagLength);
      if (![32, 64, 96, 104, 112, 120, 128].includes(out.tagLength)) throw fail("OperationError", "Invalid tagLength");
    }
    if (name === "AES-CBC" && (op === "encrypt" || op === "decrypt")) {
      out.iv = bytesOf(need("iv"), "iv");
      if (out.iv.length !== 16) throw fail("OperationError", "AES-CBC: iv must be 16 bytes");
    }
    if (name === "AES-CTR" && (op === "encrypt" || op === "decrypt")) {
      out.counter = bytesOf(need("counter"), "counter");
      out.length = num("length");
      if (out.counter.length !== 16 || out.length < 1 || out.length > 128) throw fail("OperationError", "AES-CTR: bad counter or length");
    }
    if (name === "PBKDF2" && op === "deriveBits") {
      out.hash = normalize("digest", need("hash")); out.salt = bytesOf(need("salt"), "salt"); out.iterations = num("iterations");
    }
    if (name === "HKDF" && op === "deriveBits") {
      out.hash = normalize("digest", need("hash")); out.salt = bytesOf(need("salt"), "salt"); out.info = bytesOf(need("info"), "info");
    }
    if ((name === "ECDH" || name === "X25519") && op === "deriveBits") {
      const pub = need("public");
      if (!(pub instanceof CryptoKey)) throw new TypeError(`${name}: public must be a CryptoKey`);
      out.public = pub;
    }
    return out;
  }

  const SLOTS = new WeakMap();
  class CryptoKey {
    constructor() { throw new TypeError("Illegal constructor"); }
    get type() { return slot(this).type; }
    get extractable() { return slot(this).extractable; }
    get algorithm() { return slot(this).algorithm; }
    get usages() { return slot(this).usages; }
    get [Symbol.toStringTag]() { return "CryptoKey"; }
  }
  function slot(key) {
    const s = SLOTS.get(key);
    if (!s) throw new TypeError("Not a CryptoKey");
    return s;
  }
  function makeKey(type, extractable, algorithm, usages, material) {
    const key = Object.create(CryptoKey.prototype);
    const sorted = USAGE_ORDER.filter((u) => usages.includes(u));
    SLOTS.set(key, { type, extractable, algorithm, usages: sorted, material });
    return key;
  }
  function checkUsages(name, usages, type) {
    const list = Array.from(usages, String);
    const [own, pub] = USAGES[name];
    const allowed = type === "public" ? pub : own;
    for (const u of list) {
      if (!allowed.includes(u)) throw fail("SyntaxError", `Usage '${u}' is not valid for a ${name} ${type} key`);
    }
    if (list.length === 0 && type !== "public") throw fail("SyntaxError", "Usages must not be empty");
    return list;
  }
  function useKey(key, alg, usage) {
    const s = slot(key);
    if (s.algorithm.name !== alg.name) throw fail("InvalidAccessError", `The key is for ${s.algorithm.name}, not ${alg.name}`);
    if (!s.usages.includes(usage)) throw fail("InvalidAccessError", `The key does not allow '${usage}'`);
    return s;
  }
  // What the host needs of an operation and a key.
  function hostAlg(alg, s) {
    const out = { ...alg };
    if (s.algorithm.hash) out.hash = s.algorithm.hash.name;
    else if (alg.hash) out.hash = alg.hash.name;
    if (alg.public) out.public = slot(alg.public).material;
    return out;
  }
  const buffer = (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);

  // ---- secret keys: raw and oct JWK, handled here ----
  const b64u = (bytes) => bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  function fromB64u(s, member) {
    try { return Uint8Array.fromBase64(String(s), { alphabet: "base64url" }); }
    catch { throw fail("DataError", `JWK member ${member} is not base64url`); }
  }
  function jwkAlg(alg, bits) {
    if (alg.name === "HMAC") return "HS" + (alg.hash.name === "SHA-1" ? "1" : alg.hash.name.slice(4));
    if (AES.includes(alg.name)) return `A${bits}${alg.name.slice(4)}`;
    return undefined;
  }
  function checkJwk(jwk, extractable, usages, use) {
    if (jwk === null || typeof jwk !== "object") throw new TypeError("JWK key data must be an object");
    if (jwk.use !== undefined && usages.length && jwk.use !== use) throw fail("DataError", `JWK use must be '${use}'`);
    if (jwk.key_ops !== undefined) {
      const ops = Array.from(jwk.key_ops);
      if (!usages.every((u) => ops.includes(u))) throw fail("DataError", "JWK key_ops does not allow the usages");
    }
    if (jwk.ext === false && extractable) throw fail("DataError", "JWK ext is false but the key is to be extractable");
  }
  function secretAlgorithm(alg, bits) {
    if (alg.name === "HMAC") {
      if (bits === 0) throw fail("DataError", "HMAC key data must not be empty");
      let length = bits;
      if (alg.length !== undefined) {
        if (alg.length > bits || alg.length <= bits - 8) throw fail("DataError", "HMAC length does not fit the key data");
        length = alg.length;
      }
      return { name: "HMAC", hash: alg.hash, length };
    }
    if (AES.includes(alg.name)) {
      if (![128, 192, 256].includes(bits)) throw fail("DataError", "AES key data must be 128, 192 or 256 bits");
      return { name: alg.name, length: bits };
    }
    return { name: alg.name };
  }
  function importSecret(format, data, alg, extractable, usages) {
    if ((alg.name === "PBKDF2" || alg.name === "HKDF") && extractable) {
      throw fail("SyntaxError", `${alg.name} keys cannot be extractable`);
    }
    let raw;
    if (format === "raw") raw = bytesOf(data, "keyData");
    else if (format === "jwk" && alg.name !== "PBKDF2" && alg.name !== "HKDF") {
      checkJwk(data, extractable, usages, alg.name === "HMAC" ? "sig" : "enc");
      if (data.kty !== "oct") throw fail("DataError", "JWK kty must be 'oct'");
      if (data.k === undefined) throw fail("DataError", "JWK member k is required");
      raw = fromB64u(data.k, "k");
      const expected = jwkAlg(alg, raw.length * 8);
      if (data.alg !== undefined && data.alg !== expected) throw fail("DataError", `JWK alg must be ${expected}`);
    } else throw fail("NotSupportedError", `Format '${format}' is not supported for ${alg.name}`);
    const algorithm = secretAlgorithm(alg, raw.length * 8);
    return makeKey("secret", extractable, algorithm, usages, { raw });
  }
  function exportSecret(format, s) {
    const raw = s.material.raw;
    if (format === "raw") return buffer(raw);
    if (format !== "jwk") throw fail("NotSupportedError", `Format '${format}' is not supported for secret keys`);
    const jwk = { kty: "oct", k: b64u(raw), key_ops: s.usages.slice(), ext: s.extractable };
    const alg = jwkAlg(s.algorithm, raw.length * 8);
    if (alg) jwk.alg = alg;
    return jwk;
  }

  // ---- asymmetric keys: parsed and written by the host ----
  function checkAsymmetric(alg, info) {
    const kind = RSA.includes(alg.name) ? "RSA" : alg.name === "ECDSA" || alg.name === "ECDH" ? "EC" : alg.name;
    if (info.kind !== kind) throw fail("DataError", `The key is not a ${alg.name} key`);
    if (kind === "EC" && info.namedCurve !== alg.namedCurve) throw fail("DataError", "namedCurve does not match the key");
    const algorithm = { name: alg.name };
    if (kind === "EC") algorithm.namedCurve = info.namedCurve;
    if (kind === "RSA") Object.assign(algorithm, { modulusLength: info.modulusLength, publicExponent: info.publicExponent, hash: alg.hash });
    return algorithm;
  }
  async function importAsymmetric(format, data, alg, extractable, usages) {
    if (format === "jwk") checkJwk(data, extractable, usages, ["RSA-OAEP", "ECDH", "X25519"].includes(alg.name) ? "enc" : "sig");
    else data = bytesOf(data, "keyData");
    const { type, der, info } = await call("importKey", [{ name: alg.name, namedCurve: alg.namedCurve }, format,
      format === "jwk" ? { ...data } : data]);
    const algorithm = checkAsymmetric(alg, info);
    checkUsages(alg.name, usages, type);
    return makeKey(type, extractable, algorithm, usages, { type, der });
  }

  class SubtleCrypto {
    constructor() { throw new TypeError("Illegal constructor"); }
    async digest(alg, data) {
      const a = normalize("digest", alg);
      return buffer(await call("digest", [a.name, bytesOf(data)]));
    }
    async importKey(format, data, alg, extractable, usages) {
      const a = normalize("importKey", alg);
      const list = Array.from(usages, String);
      if (!["raw", "jwk", "spki", "pkcs8"].includes(format)) throw new TypeError(`Unknown key format '${format}'`);
      if (USAGES[a.name].length === 1) {
        checkUsages(a.name, list, "secret");
        return importSecret(format, data, a, Boolean(extractable), list);
      }
      return importAsymmetric(format, data, a, Boolean(extractable), list);
    }
    async exportKey(format, key) {
      const s = slot(key);
      if (!["raw", "jwk", "spki", "pkcs8"].includes(format)) throw new TypeError(`Unknown key format '${format}'`);
      if (!s.extractable) throw fail("InvalidAccessError", "The key is not extractable");
      if (s.type === "secret") return exportSecret(format, s);
      const out = await call("exportKey", [format, s.material]);
      if (format !== "jwk") return buffer(out);
      return Object.assign(out, { key_ops: s.usages.slice(), ext: true });
    }
    async generateKey(alg, extractable, usages) {
      const a = normalize("generateKey", alg);
      const list = Array.from(usages, String);
      extractable = Boolean(extractable);
      if (USAGES[a.name].length === 1) {
        checkUsages(a.name, list, "secret");
        let bits = a.length;
        if (a.name === "HMAC" && bits === undefined) bits = HASH_BLOCK_BITS[a.hash.name];
        if (AES.includes(a.name) && ![128, 192, 256].includes(bits)) throw fail("OperationError", "AES length must be 128, 192 or 256");
        if (!(bits > 0)) throw fail("OperationError", "The key length must be positive");
        const raw = await call("random", [Math.ceil(bits / 8)]);
        return makeKey("secret", extractable, secretAlgorithm({ ...a, length: bits }, raw.length * 8), list, { raw });
      }
      const [own, pub] = USAGES[a.name];
      for (const u of list) if (!own.includes(u) && !pub.includes(u)) throw fail("SyntaxError", `Usage '${u}' is not valid for ${a.name}`);
      const privateUsages = list.filter((u) => own.includes(u));
      if (privateUsages.length === 0) throw fail("SyntaxError", "Usages must include one for the private key");
      const pair = await call("generatePair", [{ ...a, hash: undefined }]);
      const algorithm = checkAsymmetric(a, pair.info);
      return {
        privateKey: makeKey("private", extractable, algorithm, privateUsages, { type: "private", der: pair.private }),
        publicKey: makeKey("public", true, algorithm, list.filter((u) => pub.includes(u)), { type: "public", der: pair.public }),
      };
    }
    async sign(alg, key, data) {
      const a = normalize("sign", alg);
      const s = useKey(key, a, "sign");
      return buffer(await call("sign", [hostAlg(a, s), s.material, bytesOf(data)]));
    }
    async verify(alg, key, signature, data) {
      const a = normalize("verify", alg);
      const s = useKey(key, a, "verify");
      return call("verify", [hostAlg(a, s), s.material, bytesOf(signature, "signature"), bytesOf(data)]);
    }
    async encrypt(alg, key, data) {
      const a = normalize("encrypt", alg);
      const s = useKey(key, a, "encrypt");
      return buffer(await call("encrypt", [hostAlg(a, s), s.material, bytesOf(data)]));
    }
    async decrypt(alg, key, data) {
      const a = normalize("decrypt", alg);
      const s = useKey(key, a, "decrypt");
      return buffer(await call("decrypt", [hostAlg(a, s), s.material, bytesOf(data)]));
    }
    async deriveBits(alg, key, length = null) {
      const a = normalize("deriveBits", alg);
      const s = useKey(key, a, "deriveBits");
      return derive(a, s, length);
    }
    async deriveKey(alg, key, derivedType, extractable, usages) {
      const a = normalize("deriveBits", alg);
      const t = normalize("importKey", derivedType);
      const s = useKey(key, a, "deriveKey");
      let bits = t.length;
      if (t.name === "HMAC" && bits === undefined) bits = HASH_BLOCK_BITS[t.hash.name];
      if (AES.includes(t.name)) bits = Number(derivedType.length);
      if (!(bits > 0)) throw fail("OperationError", `Cannot derive a ${t.name} key without a length`);
      const raw = await derive(a, s, bits);
      return this.importKey("raw", raw, derivedType, extractable, usages);
    }
    async wrapKey(format, key, wrappingKey, alg) {
      const a = normalize("encrypt", alg);
      const s = useKey(wrappingKey, a, "wrapKey");
      const exported = await this.exportKey(format, key);
      const data = format === "jwk" ? internal.utf8Encode(JSON.stringify(exported)) : new Uint8Array(exported);
      return buffer(await call("encrypt", [hostAlg(a, s), s.material, data]));
    }
    async unwrapKey(format, wrapped, unwrappingKey, alg, keyAlg, extractable, usages) {
      const a = normalize("decrypt", alg);
      const s = useKey(unwrappingKey, a, "unwrapKey");
      const data = await call("decrypt", [hostAlg(a, s), s.material, bytesOf(wrapped)]);
      const keyData = format === "jwk" ? JSON.parse(internal.utf8Decode(data)) : data;
      return this.importKey(format, keyData, keyAlg, extractable, usages);
    }
    // Workers' extension: a constant-time comparison of two equal-length buffers.
    timingSafeEqual(a, b) {
      const x = bytesOf(a, "a"), y = bytesOf(b, "b");
      if (x.length !== y.length) throw new TypeError("timingSafeEqual: the inputs must have the same length");
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
      return diff === 0;
    }
    get [Symbol.toStringTag]() { return "SubtleCrypto"; }
  }
  async function derive(a, s, length) {
    if ((a.name === "PBKDF2" || a.name === "HKDF") && (length === null || length === undefined)) {
      throw fail("OperationError", `${a.name} needs a length`);
    }
    if (a.public && slot(a.public).algorithm.name !== a.name) throw fail("InvalidAccessError", "The public key is for another algorithm");
    const bits = await call("deriveBits", [hostAlg(a, s), s.material, length === null ? null : Number(length)]);
    return buffer(bits);
  }
  const makeSubtle = () => Object.create(SubtleCrypto.prototype);

  const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
    Uint32Array, BigInt64Array, BigUint64Array];
  const crypto = {
    getRandomValues(array) {
      if (!INTEGER_ARRAYS.some((T) => array instanceof T)) {
        throw new DOMException("The provided ArrayBufferView is not an integer array", "TypeMismatchError");
      }
      if (array.byteLength > 65536) {
        throw new QuotaExceededError(`The ArrayBufferView's byte length (${array.byteLength}) exceeds 65536`);
      }
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
      return array;
    },
    randomUUID() {
      const b = randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  crypto.subtle = makeSubtle();
  define("crypto", crypto);
  define("Crypto", function Crypto() { throw new TypeError("Illegal constructor"); });
  define("CryptoKey", CryptoKey);
  define("SubtleCrypto", SubtleCrypto);
})();
