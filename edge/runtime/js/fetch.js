// fetch(): outbound HTTP for JavaScript functions, performed by the platform.
// The request goes to the runtime worker as a host call (internal.hostCall,
// dispatch.js); the worker applies the egress policy after DNS resolution and
// on every redirect, caps the response size and the subrequests in flight,
// and counts the time against the function's deadline. A refused or failed
// fetch rejects with a TypeError, as in browsers (its message says "egress"
// when the policy refused it).
(function () {
  "use strict";
  const internal = globalThis.__edgeInternal;
  const BODY = internal.BODY;
  const REDIRECT = ["follow", "manual", "error"];

  function requestBody(request) {
    const body = request[BODY];
    if (body === null || body === undefined) return null;
    return (typeof body === "string" ? internal.utf8Encode(body) : body).toBase64();
  }
  function makeResponse(v) {
    const res = Object.create(Response.prototype);
    res.status = v.status;
    res.statusText = v.statusText;
    res.headers = internal.headersFromPairs(v.headers);
    res[BODY] = v.body === null ? null : Uint8Array.fromBase64(v.body);
    res.type = "basic";
    res.url = v.url;
    res.redirected = v.redirected;
    res.webSocket = null;
    return res;
  }

  async function fetch(input, init = undefined) {
    const request = new Request(input, init || {});
    const redirect = REDIRECT.includes(request.redirect) ? request.redirect : "follow";
    if (request.signal && request.signal.aborted) throw new TypeError("fetch: the request was aborted");
    const reply = await internal.hostCall("fetch", {
      url: request.url,
      method: request.method,
      headers: internal.headerPairs(request.headers),
      body: requestBody(request),
      redirect,
    });
    if (!reply || !reply.ok) throw new TypeError("fetch failed: " + (reply ? reply.message : "no answer"));
    return makeResponse(reply.value);
  }
  Object.defineProperty(globalThis, "fetch", { value: fetch, writable: true, configurable: true, enumerable: false });
})();
