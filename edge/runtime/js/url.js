// WHATWG URL and URLSearchParams for edge functions, in plain JavaScript.
//
// Follows the URL Standard's basic URL parser state machine, host parser
// (IPv4, IPv6, opaque hosts), serializer and setters. Domain-to-ASCII is an
// approximation of UTS #46 (NFKC + lowercase mapping, ignored code points,
// disallowed code points by Unicode category, Punycode) without the full
// IDNA mapping table; see the conformance test for the exact count.
(function () {
  "use strict";
  const FAILURE = Symbol("failure");
  const SPECIAL = { "ftp:": 21, "file:": null, "http:": 80, "https:": 443, "ws:": 80, "wss:": 443 };
  const isSpecialScheme = (s) => Object.prototype.hasOwnProperty.call(SPECIAL, s + ":");
  const defaultPort = (s) => (isSpecialScheme(s) ? SPECIAL[s + ":"] : null);

  // ---- percent-encode sets (as predicates on a code point number) ----
  const c0 = (c) => c < 0x20 || c > 0x7e;
  const fragmentSet = (c) => c0(c) || c === 0x20 || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60;
  const querySet = (c) => c0(c) || c === 0x20 || c === 0x22 || c === 0x23 || c === 0x3c || c === 0x3e;
  const specialQuerySet = (c) => querySet(c) || c === 0x27;
  const pathSet = (c) => querySet(c) || c === 0x3f || c === 0x5e || c === 0x60 || c === 0x7b || c === 0x7d;
  const userinfoSet = (c) =>
    pathSet(c) || c === 0x2f || c === 0x3a || c === 0x3b || c === 0x3d || c === 0x40 ||
    (c >= 0x5b && c <= 0x5e) || c === 0x7c;
  const componentSet = (c) => userinfoSet(c) || (c >= 0x24 && c <= 0x26) || c === 0x2b || c === 0x2c;
  const formSet = (c) => componentSet(c) || c === 0x21 || (c >= 0x27 && c <= 0x29) || c === 0x7e;

  const HEX = "0123456789ABCDEF";
  function utf8Bytes(cp) {
    if (cp < 0x80) return [cp];
    if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
    if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
    return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  }
  function encodeCp(cp, set, spaceAsPlus) {
    if (spaceAsPlus && cp === 0x20) return "+";
    if (!set(cp)) return String.fromCodePoint(cp);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    let out = "";
    for (const b of utf8Bytes(cp)) out += "%" + HEX[b >> 4] + HEX[b & 15];
    return out;
  }
  function percentEncode(str, set, spaceAsPlus) {
    let out = "";
    for (const ch of str) out += encodeCp(ch.codePointAt(0), set, spaceAsPlus);
    return out;
  }
  const isHex = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
  function percentDecodeBytes(str) {
    const bytes = new TextEncoder().encode(str);
    const out = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
        out.push(parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16));
        i += 2;
      } else {
        out.push(b);
      }
    }
    return new Uint8Array(out);
  }
  const utf8Decode = (bytes) => new TextDecoder().decode(bytes);

  // ---- Punycode (RFC 3492) ----
  const BASE = 36, TMIN = 1, TMAX = 26, SKEW = 38, DAMP = 700, IBIAS = 72, IN = 128;
  function adapt(delta, numPoints, first) {
    delta = first ? Math.floor(delta / DAMP) : delta >> 1;
    delta += Math.floor(delta / numPoints);
    let k = 0;
    while (delta > ((BASE - TMIN) * TMAX) >> 1) { delta = Math.floor(delta / (BASE - TMIN)); k += BASE; }
    return k + Math.floor(((BASE - TMIN + 1) * delta) / (delta + SKEW));
  }
  const digitChar = (d) => String.fromCharCode(d + 22 + 75 * (d < 26));
  function punyEncode(input) {
    const cps = Array.from(input, (c) => c.codePointAt(0));
    let out = cps.filter((c) => c < 0x80).map((c) => String.fromCharCode(c)).join("");
    const b = out.length;
    let h = b, n = IN, delta = 0, bias = IBIAS;
    if (b > 0) out += "-";
    while (h < cps.length) {
      const m = Math.min(...cps.filter((c) => c >= n));
      delta += (m - n) * (h + 1);
      n = m;
      for (const c of cps) {
        if (c < n) delta++;
        if (c !== n) continue;
        let q = delta;
        for (let k = BASE; ; k += BASE) {
          const t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
          if (q < t) break;
          out += digitChar(t + ((q - t) % (BASE - t)));
          q = Math.floor((q - t) / (BASE - t));
        }
        out += digitChar(q);
        bias = adapt(delta, h + 1, h === b);
        delta = 0;
        h++;
      }
      delta++; n++;
    }
    return out;
  }
  function punyDigit(c) {
    if (c >= 0x30 && c <= 0x39) return c - 22;
    if (c >= 0x41 && c <= 0x5a) return c - 0x41;
    if (c >= 0x61 && c <= 0x7a) return c - 0x61;
    return BASE;
  }
  function punyDecode(input) {
    const out = [];
    const basic = input.lastIndexOf("-");
    for (let j = 0; j < Math.max(basic, 0); j++) {
      if (input.charCodeAt(j) >= 0x80) return FAILURE;
      out.push(input.charCodeAt(j));
    }
    let i = 0, n = IN, bias = IBIAS;
    for (let idx = basic > 0 ? basic + 1 : 0; idx < input.length;) {
      const oldi = i;
      for (let w = 1, k = BASE; ; k += BASE) {
        if (idx >= input.length) return FAILURE;
        const digit = punyDigit(input.charCodeAt(idx++));
        if (digit >= BASE) return FAILURE;
        i += digit * w;
        const t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
        if (digit < t) break;
        w *= BASE - t;
        if (i > 0x7fffffff || w > 0x7fffffff) return FAILURE;
      }
      bias = adapt(i - oldi, out.length + 1, oldi === 0);
      n += Math.floor(i / (out.length + 1));
      i %= out.length + 1;
      if (n > 0x10ffff) return FAILURE;
      out.splice(i++, 0, n);
    }
    return String.fromCodePoint(...out);
  }

  // ---- domain to ASCII (UTS #46 approximation, non-transitional) ----
  // Unicode-property regexps cost ~0.4 ms to build: made on first non-ASCII host.
  let IGNORED, DISALLOWED;
  function unicodeSets() {
    IGNORED = /[\u00ad\u034f\u180b-\u180f\u200b\u2060\ufeff\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/gu;
    DISALLOWED = /[\p{Cc}\p{Cs}\p{Co}\p{Cn}\p{Zs}\p{Zl}\p{Zp}\ufffd\ufffc]|(?![\u200c\u200d])\p{Cf}/u;
  }
  const DOTS = /[\u3002\uff0e\uff61]/g;

  function mapDomain(domain) {
    return domain.replace(IGNORED, "").normalize("NFKC").toLowerCase().normalize("NFKC").replace(DOTS, ".");
  }
  function validLabel(label) {
    if (label.normalize("NFC") !== label) return false;
    if (/^\p{M}/u.test(label) || DISALLOWED.test(label)) return false;
    return !/[\u200c\u200d]/.test(label);
  }
  function labelToASCII(label) {
    if (/^xn--/.test(label)) {
      const decoded = punyDecode(label.slice(4));
      if (decoded === FAILURE || decoded === "" || /^[\x00-\x7f]*$/.test(decoded)) return FAILURE;
      if (mapDomain(decoded) !== decoded || !validLabel(decoded)) return FAILURE;
      return label;
    }
    if (/^[\x00-\x7f]*$/.test(label)) return label;
    if (!validLabel(label)) return FAILURE;
    return "xn--" + punyEncode(label);
  }
  function domainToASCII(domain) {
    const lowered = domain.toLowerCase();
    if (/^[\x00-\x7f]*$/.test(domain) && !/(^|\.)xn--/.test(lowered)) return lowered;
    if (!IGNORED) unicodeSets();
    const labels = mapDomain(domain).split(".");
    const out = [];
    for (const label of labels) {
      const ascii = labelToASCII(label);
      if (ascii === FAILURE) return FAILURE;
      out.push(ascii);
    }
    const result = out.join(".");
    return result === "" ? FAILURE : result;
  }

  // ---- hosts ----
  const FORBIDDEN_HOST = /[\x00\t\n\r #/:<>?@[\\\]^|]/;
  const FORBIDDEN_DOMAIN = /[\x00-\x1f #%/:<>?@[\\\]^|\x7f]/;

  function parseIPv4Number(s) {
    if (s === "") return FAILURE;
    let radix = 10;
    if (/^0[xX]/.test(s)) { s = s.slice(2); radix = 16; } else if (s.length > 1 && s[0] === "0") { s = s.slice(1); radix = 8; }
    if (s === "") return 0;
    const re = radix === 10 ? /^[0-9]+$/ : radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-7]+$/;
    return re.test(s) ? parseInt(s, radix) : FAILURE;
  }
  function endsInNumber(s) {
    const parts = s.split(".");
    if (parts[parts.length - 1] === "") { if (parts.length === 1) return false; parts.pop(); }
    const last = parts[parts.length - 1];
    return (last !== "" && /^[0-9]+$/.test(last)) || parseIPv4Number(last) !== FAILURE;
  }
  function parseIPv4(s) {
    const parts = s.split(".");
    if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
    if (parts.length > 4) return FAILURE;
    const nums = [];
    for (const p of parts) {
      const n = parseIPv4Number(p);
      if (n === FAILURE) return FAILURE;
      nums.push(n);
    }
    for (let i = 0; i < nums.length - 1; i++) if (nums[i] > 255) return FAILURE;
    const last = nums[nums.length - 1];
    if (last >= 256 ** (5 - nums.length)) return FAILURE;
    let ip = last;
    for (let i = 0; i < nums.length - 1; i++) ip += nums[i] * 256 ** (3 - i);
    const out = [];
    for (let i = 0; i < 4; i++) { out.unshift(String(ip % 256)); ip = Math.floor(ip / 256); }
    return out.join(".");
  }
  function parseIPv6(input) {
    const addr = [0, 0, 0, 0, 0, 0, 0, 0];
    const cps = Array.from(input, (ch) => ch.codePointAt(0));
    let piece = 0, compress = null, p = 0;
    const hexv = (c) => parseInt(String.fromCharCode(c), 16);
    if (cps[p] === 0x3a) {
      if (cps[p + 1] !== 0x3a) return FAILURE;
      p += 2; compress = ++piece;
    }
    while (p < cps.length) {
      if (piece === 8) return FAILURE;
      if (cps[p] === 0x3a) {
        if (compress !== null) return FAILURE;
        p++; compress = ++piece; continue;
      }
      let value = 0, len = 0;
      while (len < 4 && p < cps.length && isHex(cps[p])) { value = value * 16 + hexv(cps[p]); p++; len++; }
      if (cps[p] === 0x2e) {
        if (len === 0) return FAILURE;
        p -= len;
        if (piece > 6) return FAILURE;
        let seen = 0;
        while (p < cps.length) {
          let v4 = null;
          if (seen > 0) { if (cps[p] === 0x2e && seen < 4) p++; else return FAILURE; }
          if (!(cps[p] >= 0x30 && cps[p] <= 0x39)) return FAILURE;
          while (cps[p] >= 0x30 && cps[p] <= 0x39) {
            const n = cps[p] - 0x30;
            if (v4 === null) v4 = n; else if (v4 === 0) return FAILURE; else v4 = v4 * 10 + n;
            if (v4 > 255) return FAILURE;
            p++;
          }
          addr[piece] = addr[piece] * 0x100 + v4;
          seen++;
          if (seen === 2 || seen === 4) piece++;
        }
        if (seen !== 4) return FAILURE;
        break;
      } else if (cps[p] === 0x3a) {
        p++;
        if (p >= cps.length) return FAILURE;
      } else if (p < cps.length) {
        return FAILURE;
      }
      addr[piece++] = value;
    }
    if (compress !== null) {
      let swaps = piece - compress;
      piece = 7;
      while (piece !== 0 && swaps > 0) {
        const t = addr[piece]; addr[piece] = addr[compress + swaps - 1]; addr[compress + swaps - 1] = t;
        piece--; swaps--;
      }
    } else if (piece !== 8) {
      return FAILURE;
    }
    return addr;
  }
  function serializeIPv6(addr) {
    let best = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      let j = i;
      while (j < 8 && addr[j] === 0) j++;
      if (j - i > bestLen) { best = i; bestLen = j - i; }
      i = j === i ? i + 1 : j;
    }
    let out = "";
    for (let i = 0; i < 8; i++) {
      if (i === best) { out += i === 0 ? "::" : ":"; i += bestLen - 1; continue; }
      out += addr[i].toString(16) + (i < 7 ? ":" : "");
    }
    return "[" + out + "]";
  }
  function parseHost(input, isOpaque) {
    if (input[0] === "[") {
      if (input[input.length - 1] !== "]") return FAILURE;
      const addr = parseIPv6(input.slice(1, -1));
      return addr === FAILURE ? FAILURE : serializeIPv6(addr);
    }
    if (isOpaque) return FORBIDDEN_HOST.test(input) ? FAILURE : percentEncode(input, c0);
    const domain = utf8Decode(percentDecodeBytes(input));
    const ascii = domainToASCII(domain);
    if (ascii === FAILURE || FORBIDDEN_DOMAIN.test(ascii)) return FAILURE;
    return endsInNumber(ascii) ? parseIPv4(ascii) : ascii;
  }

  // ---- the basic URL parser ----
  const S = {
    SCHEME_START: 1, SCHEME: 2, NO_SCHEME: 3, SPECIAL_RELATIVE_OR_AUTHORITY: 4, PATH_OR_AUTHORITY: 5,
    RELATIVE: 6, RELATIVE_SLASH: 7, SPECIAL_AUTHORITY_SLASHES: 8, SPECIAL_AUTHORITY_IGNORE_SLASHES: 9,
    AUTHORITY: 10, HOST: 11, HOSTNAME: 12, PORT: 13, FILE: 14, FILE_SLASH: 15, FILE_HOST: 16,
    PATH_START: 17, PATH: 18, OPAQUE_PATH: 19, QUERY: 20, FRAGMENT: 21,
  };
  const newRecord = () => ({
    scheme: "", username: "", password: "", host: null, port: null, path: [], query: null, fragment: null,
  });
  const hasOpaquePath = (u) => typeof u.path === "string";
  const isSpecial = (u) => isSpecialScheme(u.scheme);
  const includesCredentials = (u) => u.username !== "" || u.password !== "";
  const isAlpha = (c) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  const isDigit = (c) => c >= 0x30 && c <= 0x39;
  const isDriveLetter = (s, normalized) =>
    s.length === 2 && isAlpha(s.charCodeAt(0)) && (s[1] === ":" || (!normalized && s[1] === "|"));
  function startsWithDrive(cps, p) {
    if (cps.length - p < 2) return false;
    if (!isAlpha(cps[p]) || (cps[p + 1] !== 0x3a && cps[p + 1] !== 0x7c)) return false;
    const n = cps[p + 2];
    return cps.length - p === 2 || n === 0x2f || n === 0x5c || n === 0x3f || n === 0x23;
  }
  function shortenPath(u) {
    if (u.scheme === "file" && u.path.length === 1 && isDriveLetter(u.path[0], true)) return;
    u.path.pop();
  }
  const isSingleDot = (s) => s === "." || s.toLowerCase() === "%2e";
  const isDoubleDot = (s) => { s = s.toLowerCase(); return s === ".." || s === ".%2e" || s === "%2e." || s === "%2e%2e"; };

  function basicParse(input, base, url, override) {
    if (!url) {
      url = newRecord();
      input = input.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
    }
    input = input.replace(/[\t\n\r]/g, "");
    const cps = Array.from(input, (ch) => ch.codePointAt(0));
    const st = { state: override || S.SCHEME_START, buf: "", at: false, brackets: false, pwd: false, p: 0 };
    for (; st.p <= cps.length; st.p++) {
      const c = st.p < cps.length ? cps[st.p] : -1;
      const r = STATES[st.state](st, c, cps, url, base, override);
      if (r === FAILURE) return FAILURE;
      if (r === RETURN) return url;
    }
    return url;
  }
  const RETURN = Symbol("return");
  const ch = (c) => String.fromCodePoint(c);

  const STATES = {
    [S.SCHEME_START](st, c, cps, url, base, override) {
      if (isAlpha(c)) { st.buf += ch(c).toLowerCase(); st.state = S.SCHEME; }
      else if (!override) { st.state = S.NO_SCHEME; st.p--; }
      else return FAILURE;
    },
    [S.SCHEME](st, c, cps, url, base, override) {
      if (isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e) { st.buf += ch(c).toLowerCase(); return; }
      if (c === 0x3a) return schemeEnd(st, cps, url, base, override);
      if (!override) { st.buf = ""; st.state = S.NO_SCHEME; st.p = -1; return; }
      return FAILURE;
    },
    [S.NO_SCHEME](st, c, cps, url, base) {
      if (!base || (hasOpaquePath(base) && c !== 0x23)) return FAILURE;
      if (hasOpaquePath(base) && c === 0x23) {
        Object.assign(url, { scheme: base.scheme, path: base.path, query: base.query, fragment: "" });
        st.state = S.FRAGMENT;
      } else {
        st.state = base.scheme !== "file" ? S.RELATIVE : S.FILE;
        st.p--;
      }
    },
    [S.SPECIAL_RELATIVE_OR_AUTHORITY](st, c, cps) {
      if (c === 0x2f && cps[st.p + 1] === 0x2f) { st.state = S.SPECIAL_AUTHORITY_IGNORE_SLASHES; st.p++; }
      else { st.state = S.RELATIVE; st.p--; }
    },
    [S.PATH_OR_AUTHORITY](st, c) {
      if (c === 0x2f) st.state = S.AUTHORITY; else { st.state = S.PATH; st.p--; }
    },
    [S.RELATIVE](st, c, cps, url, base) {
      url.scheme = base.scheme;
      if (c === 0x2f || (isSpecial(url) && c === 0x5c)) { st.state = S.RELATIVE_SLASH; return; }
      Object.assign(url, {
        username: base.username, password: base.password, host: base.host, port: base.port,
        path: base.path.slice(), query: base.query,
      });
      if (c === 0x3f) { url.query = ""; st.state = S.QUERY; }
      else if (c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
      else if (c !== -1) { url.query = null; shortenPath(url); st.state = S.PATH; st.p--; }
    },
    [S.RELATIVE_SLASH](st, c, cps, url, base) {
      if (isSpecial(url) && (c === 0x2f || c === 0x5c)) st.state = S.SPECIAL_AUTHORITY_IGNORE_SLASHES;
      else if (c === 0x2f) st.state = S.AUTHORITY;
      else {
        Object.assign(url, { username: base.username, password: base.password, host: base.host, port: base.port });
        st.state = S.PATH; st.p--;
      }
    },
    [S.SPECIAL_AUTHORITY_SLASHES](st, c, cps) {
      st.state = S.SPECIAL_AUTHORITY_IGNORE_SLASHES;
      if (c === 0x2f && cps[st.p + 1] === 0x2f) st.p++; else st.p--;
    },
    [S.SPECIAL_AUTHORITY_IGNORE_SLASHES](st, c) {
      if (c !== 0x2f && c !== 0x5c) { st.state = S.AUTHORITY; st.p--; }
    },
    [S.AUTHORITY](st, c, cps, url) {
      if (c === 0x40) {
        if (st.at) st.buf = "%40" + st.buf;
        st.at = true;
        for (const cpch of st.buf) {
          if (cpch === ":" && !st.pwd) { st.pwd = true; continue; }
          const enc = percentEncode(cpch, userinfoSet);
          if (st.pwd) url.password += enc; else url.username += enc;
        }
        st.buf = "";
      } else if (c === -1 || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecial(url) && c === 0x5c)) {
        if (st.at && st.buf === "") return FAILURE;
        st.p -= Array.from(st.buf).length + 1;
        st.buf = "";
        st.state = S.HOST;
      } else {
        st.buf += ch(c);
      }
    },
    [S.HOST]: hostState,
    [S.HOSTNAME]: hostState,
    [S.PORT](st, c, cps, url, base, override) {
      if (isDigit(c)) { st.buf += ch(c); return; }
      if (c === -1 || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecial(url) && c === 0x5c) || override) {
        if (st.buf !== "") {
          const port = parseInt(st.buf, 10);
          if (port > 65535) return FAILURE;
          url.port = port === defaultPort(url.scheme) ? null : port;
          st.buf = "";
          if (override) return RETURN;
        }
        if (override) return FAILURE;
        st.state = S.PATH_START; st.p--;
        return;
      }
      return FAILURE;
    },
    [S.FILE](st, c, cps, url, base) {
      url.scheme = "file";
      url.host = "";
      if (c === 0x2f || c === 0x5c) { st.state = S.FILE_SLASH; return; }
      if (base && base.scheme === "file") {
        Object.assign(url, { host: base.host, path: base.path.slice(), query: base.query });
        if (c === 0x3f) { url.query = ""; st.state = S.QUERY; }
        else if (c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
        else if (c !== -1) {
          url.query = null;
          if (!startsWithDrive(cps, st.p)) shortenPath(url); else url.path = [];
          st.state = S.PATH; st.p--;
        }
      } else {
        st.state = S.PATH; st.p--;
      }
    },
    [S.FILE_SLASH](st, c, cps, url, base) {
      if (c === 0x2f || c === 0x5c) { st.state = S.FILE_HOST; return; }
      if (base && base.scheme === "file") {
        url.host = base.host;
        if (!startsWithDrive(cps, st.p) && base.path.length > 0 && isDriveLetter(base.path[0], true)) {
          url.path.push(base.path[0]);
        }
      }
      st.state = S.PATH; st.p--;
    },
    [S.FILE_HOST](st, c, cps, url, base, override) {
      if (!(c === -1 || c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23)) { st.buf += ch(c); return; }
      st.p--;
      if (!override && isDriveLetter(st.buf, false)) { st.state = S.PATH; return; }
      if (st.buf === "") {
        url.host = "";
        if (override) return RETURN;
        st.state = S.PATH_START;
        return;
      }
      let host = parseHost(st.buf, !isSpecial(url));
      if (host === FAILURE) return FAILURE;
      if (host === "localhost") host = "";
      url.host = host;
      if (override) return RETURN;
      st.buf = "";
      st.state = S.PATH_START;
    },
    [S.PATH_START](st, c, cps, url, base, override) {
      if (isSpecial(url)) { st.state = S.PATH; if (c !== 0x2f && c !== 0x5c) st.p--; }
      else if (!override && c === 0x3f) { url.query = ""; st.state = S.QUERY; }
      else if (!override && c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
      else if (c !== -1) { st.state = S.PATH; if (c !== 0x2f) st.p--; }
      else if (override && url.host === null) url.path.push("");
    },
    [S.PATH](st, c, cps, url, base, override) {
      const slash = c === 0x2f || (isSpecial(url) && c === 0x5c);
      if (c === -1 || slash || (!override && (c === 0x3f || c === 0x23))) {
        if (isDoubleDot(st.buf)) {
          shortenPath(url);
          if (!slash) url.path.push("");
        } else if (isSingleDot(st.buf) && !slash) {
          url.path.push("");
        } else if (!isSingleDot(st.buf)) {
          if (url.scheme === "file" && url.path.length === 0 && isDriveLetter(st.buf, false)) {
            st.buf = st.buf[0] + ":";
          }
          url.path.push(st.buf);
        }
        st.buf = "";
        if (c === 0x3f) { url.query = ""; st.state = S.QUERY; }
        if (c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
      } else {
        st.buf += encodeCp(c, pathSet);
      }
    },
    [S.OPAQUE_PATH](st, c, cps, url) {
      if (c === 0x3f) { url.query = ""; st.state = S.QUERY; }
      else if (c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
      else if (c === 0x20) {
        const n = cps[st.p + 1];
        url.path += n === 0x3f || n === 0x23 ? "%20" : " ";
      } else if (c !== -1) url.path += encodeCp(c, c0);
    },
    [S.QUERY](st, c, cps, url, base, override) {
      if ((!override && c === 0x23) || c === -1) {
        url.query += percentEncode(st.buf, isSpecial(url) ? specialQuerySet : querySet);
        st.buf = "";
        if (c === 0x23) { url.fragment = ""; st.state = S.FRAGMENT; }
      } else if (c !== -1) {
        st.buf += ch(c);
      }
    },
    [S.FRAGMENT](st, c, cps, url) {
      if (c !== -1) url.fragment += encodeCp(c, fragmentSet);
    },
  };

  function schemeEnd(st, cps, url, base, override) {
    if (override) {
      if (isSpecial(url) !== isSpecialScheme(st.buf)) return RETURN;
      if ((includesCredentials(url) || url.port !== null) && st.buf === "file") return RETURN;
      if (url.scheme === "file" && url.host === "") return RETURN;
    }
    url.scheme = st.buf;
    if (override) {
      if (url.port === defaultPort(url.scheme)) url.port = null;
      return RETURN;
    }
    st.buf = "";
    if (url.scheme === "file") st.state = S.FILE;
    else if (isSpecial(url) && base && base.scheme === url.scheme) st.state = S.SPECIAL_RELATIVE_OR_AUTHORITY;
    else if (isSpecial(url)) st.state = S.SPECIAL_AUTHORITY_SLASHES;
    else if (cps[st.p + 1] === 0x2f) { st.state = S.PATH_OR_AUTHORITY; st.p++; }
    else { url.path = ""; st.state = S.OPAQUE_PATH; }
  }

  function hostState(st, c, cps, url, base, override) {
    if (override && url.scheme === "file") { st.p--; st.state = S.FILE_HOST; return; }
    if (c === 0x3a && !st.brackets) {
      if (st.buf === "") return FAILURE;
      if (override === S.HOSTNAME) return FAILURE;
      const host = parseHost(st.buf, !isSpecial(url));
      if (host === FAILURE) return FAILURE;
      url.host = host; st.buf = ""; st.state = S.PORT;
      return;
    }
    if (c === -1 || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecial(url) && c === 0x5c)) {
      st.p--;
      if (isSpecial(url) && st.buf === "") return FAILURE;
      if (override && st.buf === "" && (includesCredentials(url) || url.port !== null)) return FAILURE;
      const host = parseHost(st.buf, !isSpecial(url));
      if (host === FAILURE) return FAILURE;
      url.host = host; st.buf = ""; st.state = S.PATH_START;
      if (override) return RETURN;
      return;
    }
    if (c === 0x5b) st.brackets = true;
    if (c === 0x5d) st.brackets = false;
    st.buf += ch(c);
  }

  function serialize(u, excludeFragment) {
    let out = u.scheme + ":";
    if (u.host !== null) {
      out += "//";
      if (includesCredentials(u)) out += u.username + (u.password !== "" ? ":" + u.password : "") + "@";
      out += u.host + (u.port !== null ? ":" + u.port : "");
    } else if (!hasOpaquePath(u) && u.path.length > 1 && u.path[0] === "") {
      out += "/.";
    }
    out += serializePath(u);
    if (u.query !== null) out += "?" + u.query;
    if (!excludeFragment && u.fragment !== null) out += "#" + u.fragment;
    return out;
  }
  const serializePath = (u) => (hasOpaquePath(u) ? u.path : u.path.map((s) => "/" + s).join(""));

  function origin(u) {
    if (u.scheme === "blob") {
      const inner = basicParse(serializePath(u), null);
      if (inner !== FAILURE && (inner.scheme === "http" || inner.scheme === "https")) return origin(inner);
      return "null";
    }
    if (isSpecial(u) && u.scheme !== "file") return u.scheme + "://" + u.host + (u.port !== null ? ":" + u.port : "");
    return "null";
  }

  // ---- application/x-www-form-urlencoded ----
  function formParse(input) {
    const out = [];
    for (const seq of input.split("&")) {
      if (seq === "") continue;
      const eq = seq.indexOf("=");
      const name = eq >= 0 ? seq.slice(0, eq) : seq;
      const value = eq >= 0 ? seq.slice(eq + 1) : "";
      out.push([formDecode(name), formDecode(value)]);
    }
    return out;
  }
  const formDecode = (s) => utf8Decode(percentDecodeBytes(s.replace(/\+/g, " ")));
  const formSerialize = (list) =>
    list.map(([k, v]) => percentEncode(k, formSet, true) + "=" + percentEncode(v, formSet, true)).join("&");
  const usv = (v) => String(v).toWellFormed();

  const INTERNAL = Symbol("url");
  const PARAMS = Symbol("params");

  class URLSearchParams {
    constructor(init = "") {
      this[PARAMS] = { list: [], url: null };
      if (init instanceof URLSearchParams && init[Symbol.iterator] === URLSearchParams.prototype[Symbol.iterator]) {
        this[PARAMS].list = init[PARAMS].list.map((p) => p.slice());
      } else if ((typeof init === "object" || typeof init === "function") && init !== null) {
        this[PARAMS].list = initPairs(init);
      } else {
        init = usv(init);
        this[PARAMS].list = formParse(init[0] === "?" ? init.slice(1) : init);
      }
    }
    get size() { return this[PARAMS].list.length; }
    append(name, value) { this[PARAMS].list.push([usv(name), usv(value)]); update(this); }
    delete(name, value) {
      name = usv(name);
      const v = value === undefined ? undefined : usv(value);
      this[PARAMS].list = this[PARAMS].list.filter(([k, x]) => !(k === name && (v === undefined || x === v)));
      update(this);
    }
    get(name) { name = usv(name); const e = this[PARAMS].list.find(([k]) => k === name); return e ? e[1] : null; }
    getAll(name) { name = usv(name); return this[PARAMS].list.filter(([k]) => k === name).map(([, v]) => v); }
    has(name, value) {
      name = usv(name);
      const v = value === undefined ? undefined : usv(value);
      return this[PARAMS].list.some(([k, x]) => k === name && (v === undefined || x === v));
    }
    set(name, value) {
      name = usv(name); value = usv(value);
      const list = this[PARAMS].list;
      const i = list.findIndex(([k]) => k === name);
      if (i < 0) list.push([name, value]);
      else { list[i][1] = value; this[PARAMS].list = list.filter(([k], j) => j <= i || k !== name); }
      update(this);
    }
    sort() {
      const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
      this[PARAMS].list = this[PARAMS].list
        .map((p, i) => [p, i]).sort((a, b) => cmp(a[0][0], b[0][0]) || a[1] - b[1]).map(([p]) => p);
      update(this);
    }
    // Live iteration: an index into the list as it is at each step, as the spec's iterator.
    forEach(fn, thisArg) { for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this); }
    *entries() { for (let i = 0; i < this[PARAMS].list.length; i++) yield this[PARAMS].list[i].slice(); }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return formSerialize(this[PARAMS].list); }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }
  function initPairs(init) {
    if (typeof init[Symbol.iterator] === "function") {
      return Array.from(init, (pair) => {
        const p = Array.from(pair);
        if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have exactly two items");
        return [usv(p[0]), usv(p[1])];
      });
    }
    const record = new Map();  // a WebIDL record: keys as USVStrings, a later duplicate's value wins
    for (const key of Reflect.ownKeys(init)) {
      const desc = Reflect.getOwnPropertyDescriptor(init, key);
      if (desc === undefined || !desc.enumerable) continue;
      if (typeof key === "symbol") throw new TypeError("URLSearchParams: record keys must be strings");
      record.set(usv(key), usv(init[key]));
    }
    return [...record];
  }
  function update(params) {
    const url = params[PARAMS].url;
    if (!url) return;
    const s = formSerialize(params[PARAMS].list);
    url[INTERNAL].query = s === "" ? null : s;
  }

  function parseOrThrow(url, base) {
    let baseRec = null;
    if (base !== undefined) {
      baseRec = basicParse(usv(base), null);
      if (baseRec === FAILURE) throw new TypeError("Invalid base URL: " + base);
    }
    const rec = basicParse(usv(url), baseRec);
    if (rec === FAILURE) throw new TypeError("Invalid URL: " + url);
    return rec;
  }

  class URL {
    constructor(url, base) {
      this[INTERNAL] = parseOrThrow(url, base);
      const params = new URLSearchParams(this[INTERNAL].query || "");
      params[PARAMS].url = this;
      this[PARAMS] = params;
    }
    static canParse(url, base) { try { parseOrThrow(url, base); return true; } catch { return false; } }
    static parse(url, base) { try { return new URL(url, base); } catch { return null; } }
    get href() { return serialize(this[INTERNAL]); }
    set href(v) {
      const rec = basicParse(usv(v), null);
      if (rec === FAILURE) throw new TypeError("Invalid URL: " + v);
      this[INTERNAL] = rec;
      this[PARAMS][PARAMS].list = formParse(rec.query || "");
    }
    get origin() { return origin(this[INTERNAL]); }
    get protocol() { return this[INTERNAL].scheme + ":"; }
    set protocol(v) { basicParse(usv(v) + ":", null, this[INTERNAL], S.SCHEME_START); }
    get username() { return this[INTERNAL].username; }
    set username(v) { if (canHaveCredentials(this[INTERNAL])) this[INTERNAL].username = percentEncode(usv(v), userinfoSet); }
    get password() { return this[INTERNAL].password; }
    set password(v) { if (canHaveCredentials(this[INTERNAL])) this[INTERNAL].password = percentEncode(usv(v), userinfoSet); }
    get host() {
      const u = this[INTERNAL];
      if (u.host === null) return "";
      return u.port === null ? u.host : u.host + ":" + u.port;
    }
    set host(v) { if (!hasOpaquePath(this[INTERNAL])) basicParse(usv(v), null, this[INTERNAL], S.HOST); }
    get hostname() { return this[INTERNAL].host === null ? "" : this[INTERNAL].host; }
    set hostname(v) { if (!hasOpaquePath(this[INTERNAL])) basicParse(usv(v), null, this[INTERNAL], S.HOSTNAME); }
    get port() { return this[INTERNAL].port === null ? "" : String(this[INTERNAL].port); }
    set port(v) {
      const u = this[INTERNAL];
      if (!canHaveCredentials(u)) return;
      v = usv(v);
      if (v === "") u.port = null; else basicParse(v, null, u, S.PORT);
    }
    get pathname() { return serializePath(this[INTERNAL]); }
    set pathname(v) {
      const u = this[INTERNAL];
      if (hasOpaquePath(u)) return;
      u.path = [];
      basicParse(usv(v), null, u, S.PATH_START);
    }
    get search() { const q = this[INTERNAL].query; return q === null || q === "" ? "" : "?" + q; }
    set search(v) {
      const u = this[INTERNAL];
      v = usv(v);
      if (v === "") { u.query = null; this[PARAMS][PARAMS].list = []; return; }
      u.query = "";
      basicParse(v[0] === "?" ? v.slice(1) : v, null, u, S.QUERY);
      this[PARAMS][PARAMS].list = formParse(u.query);
    }
    get searchParams() { return this[PARAMS]; }
    get hash() { const f = this[INTERNAL].fragment; return f === null || f === "" ? "" : "#" + f; }
    set hash(v) {
      const u = this[INTERNAL];
      v = usv(v);
      if (v === "") { u.fragment = null; return; }
      u.fragment = "";
      basicParse(v[0] === "#" ? v.slice(1) : v, null, u, S.FRAGMENT);
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
    get [Symbol.toStringTag]() { return "URL"; }
  }
  const canHaveCredentials = (u) => !(u.host === null || u.host === "" || u.scheme === "file");

  for (const [name, value] of [["URL", URL], ["URLSearchParams", URLSearchParams]]) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  }
})();
