"""Function KV: one namespace per app environment, kept in Redis.

Shared by both planes and pure apart from the Redis calls: the runtime worker
runs operations that functions send as frames (:mod:`edge.runtime.kv`), the
control plane runs the same operations for ``edge kv`` and ``/v1/apps/{app}/kv``.
Functions never talk to Redis themselves.

Redis layout (``<ns>`` is ``edge:kv:<app>:<environment>``; app and environment
names are DNS labels, so they never contain ``:`` and a key cannot escape its
namespace, whatever bytes it holds):

- ``<ns>:v:<key>``: the value (a Redis string; ``PEXPIREAT`` when it has a TTL);
- ``<ns>:idx``: a sorted set of the keys, all scored 0, so ``ZRANGEBYLEX`` lists
  a prefix in order;
- ``<ns>:sz``: a hash, key -> bytes charged (key + value);
- ``<ns>:exp``: a sorted set, key -> expiry (ms, Redis clock), for keys with a TTL;
- ``edge:kv-bytes:<app>``: bytes charged to the app, over all its environments.

Every change runs in one Lua script, so the limits hold under any concurrency:
a value of at most ``EDGE_KV_MAX_VALUE_MB``, :data:`MAX_KEYS` keys per
namespace, ``EDGE_KV_MAX_MB`` per app. Each call first forgets (up to
:data:`PURGE_BATCH`) keys whose TTL has passed, which gives their bytes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_KEY_BYTES = 512
MAX_KEYS = 100_000
MAX_LIST = 1000
PURGE_BATCH = 200
MAX_TTL_S = 10 * 365 * 24 * 3600
OPS = frozenset({"get", "put", "delete", "list", "incr"})


class KVError(Exception):
    """A KV operation was refused.

    Attributes:
        code: ``"invalid"`` (bad key, value or argument), ``"limit"`` (a size
            or count limit), ``"type"`` (``incr`` on a value that is not an
            integer) or ``"unavailable"`` (Redis is down).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """The operator's KV limits (``EDGE_KV_MAX_VALUE_MB``, ``EDGE_KV_MAX_MB``)."""

    max_value_bytes: int = 1024 * 1024
    max_app_bytes: int = 100 * 1024 * 1024
    max_keys: int = MAX_KEYS


@dataclass(frozen=True)
class Namespace:
    """One app environment's KV namespace (never chosen by a function)."""

    app: str
    environment: str

    @property
    def prefix(self) -> str:
        return f"edge:kv:{self.app}:{self.environment}:"

    def keys(self) -> list[str]:
        """``KEYS`` of the script: index, sizes, expiries, the app's byte count."""
        p = self.prefix
        return [p + "idx", p + "sz", p + "exp", f"edge:kv-bytes:{self.app}"]

    def value_key(self, key: str) -> str:
        return f"{self.prefix}v:{key}"


def check_key(key: object) -> str:
    """A key as given by anyone (untrusted), or :class:`KVError`."""
    if not isinstance(key, str) or not key:
        raise KVError("invalid", "a KV key must be a non-empty string")
    size = len(encode_key(key))
    if size > MAX_KEY_BYTES:
        raise KVError("limit", f"KV key is {size} bytes; the limit is {MAX_KEY_BYTES}")
    if "\x00" in key:
        raise KVError("invalid", "a KV key must not contain NUL")
    return key


def check_value(value: object, limits: Limits) -> bytes:
    if not isinstance(value, bytes):
        raise KVError("invalid", "a KV value must be bytes")
    if len(value) > limits.max_value_bytes:
        raise KVError(
            "limit",
            f"KV value is {len(value)} bytes; the limit is {limits.max_value_bytes} "
            "(EDGE_KV_MAX_VALUE_MB)",
        )
    return value


def check_ttl(ttl: object) -> int:
    """A TTL in seconds (None or a positive number) as milliseconds (0: none)."""
    if ttl is None:
        return 0
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise KVError("invalid", "a KV ttl must be a number of seconds")
    if not 0 < ttl <= MAX_TTL_S:
        raise KVError("invalid", f"a KV ttl must be > 0 and <= {MAX_TTL_S} seconds, not {ttl}")
    return max(1, round(ttl * 1000))


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise KVError("invalid", f"a KV list limit must be an integer from 1 to {MAX_LIST}")
    return limit


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or len(encode_key(prefix)) > MAX_KEY_BYTES:
        raise KVError("invalid", f"a KV prefix must be a string of at most {MAX_KEY_BYTES} bytes")
    return prefix


def check_by(by: object) -> int:
    if isinstance(by, bool) or not isinstance(by, int) or abs(by) >= 2**63:
        raise KVError("invalid", "KV incr takes an integer (64-bit)")
    return by


# KEYS: idx, sz, exp, app bytes. ARGV[1]: op, ARGV[2]: the value-key prefix,
# ARGV[3]: purge batch, then per op (see _ARGS). Replies: {ok, value} where ok
# is 1, or 0 with value an error code.
SCRIPT = """
local idx, sz, exp, appb = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local vp = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function forget(k)
  local size = tonumber(redis.call('HGET', sz, k) or '0')
  redis.call('HDEL', sz, k)
  redis.call('ZREM', idx, k)
  redis.call('ZREM', exp, k)
  if size > 0 then redis.call('DECRBY', appb, size) end
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))) do
  if redis.call('EXISTS', vp .. k) == 0 then forget(k) end
end
local function charge(k, size, max_keys, max_bytes)
  local old = redis.call('HGET', sz, k)
  if not old and redis.call('ZCARD', idx) >= max_keys then return 'keys' end
  local total = tonumber(redis.call('GET', appb) or '0')
  local delta = size - tonumber(old or '0')
  if delta > 0 and total + delta > max_bytes then return 'bytes' end
  redis.call('ZADD', idx, 0, k)
  redis.call('HSET', sz, k, size)
  if delta ~= 0 then redis.call('INCRBY', appb, delta) end
  return nil
end
local op = ARGV[1]
if op == 'put' then
  local k, v, ttl = ARGV[4], ARGV[5], tonumber(ARGV[6])
  local err = charge(k, #k + #v, tonumber(ARGV[7]), tonumber(ARGV[8]))
  if err then return {0, err} end
  if ttl > 0 then
    redis.call('SET', vp .. k, v, 'PX', ttl)
    redis.call('ZADD', exp, now + ttl, k)
  else
    redis.call('SET', vp .. k, v)
    redis.call('ZREM', exp, k)
  end
  return {1, ''}
elseif op == 'delete' then
  forget(ARGV[4])
  redis.call('DEL', vp .. ARGV[4])
  return {1, ''}
elseif op == 'incr' then
  local k, by = ARGV[4], tonumber(ARGV[5])
  local cur = redis.call('GET', vp .. k)
  if cur and not string.match(cur, '^%-?%d+$') then return {0, 'type'} end
  local n = tonumber(cur or '0') + by
  local err = charge(k, #k + #string.format('%d', n), tonumber(ARGV[6]), tonumber(ARGV[7]))
  if err then return {0, err} end
  return {1, redis.call('INCRBY', vp .. k, ARGV[5])}
elseif op == 'list' then
  local limit = tonumber(ARGV[6])
  local keys = redis.call('ZRANGEBYLEX', idx, ARGV[4], ARGV[5], 'LIMIT', 0, limit + 1)
  local out = {}
  for i = 1, math.min(#keys, limit) do out[i] = keys[i] end
  local more = 0
  if #keys > limit then more = 1 end
  return {1, out, more}
end
return {0, 'invalid'}
"""

_REFUSALS = {
    "keys": "the namespace has {max_keys} keys, the limit; delete some first",
    "bytes": "the app's KV holds {max_app_bytes} bytes at most (EDGE_KV_MAX_MB)",
    "type": "incr on a value that is not an integer",
    "invalid": "invalid KV operation",
}


def script_call(ns: Namespace, op: str, args: list[Any], limits: Limits) -> list[Any]:
    """``EVAL`` arguments (script, numkeys, keys, argv) of one changing or listing operation."""
    argv: list[Any] = [op, encode_key(ns.prefix + "v:"), PURGE_BATCH, *args]
    if op in ("put", "incr"):
        argv += [limits.max_keys, limits.max_app_bytes]
    keys = ns.keys()
    return [SCRIPT, len(keys), *keys, *argv]


def lex_range(prefix: str, cursor: str | None) -> tuple[bytes, bytes]:
    """``ZRANGEBYLEX`` bounds for keys starting with ``prefix``, after ``cursor``.

    UTF-8 never contains the byte 0xFF, so ``prefix + 0xFF`` bounds the prefix.
    """
    start = b"(" + encode_key(cursor) if cursor and cursor >= prefix else b"[" + encode_key(prefix)
    return start, (b"[" + encode_key(prefix) + b"\xff") if prefix else b"+"


def script_result(reply: Any, limits: Limits) -> list[Any]:
    """The script's answer, or :class:`KVError` for a refusal."""
    if int(reply[0]):
        return list(reply)
    value = reply[1]
    code = value.decode() if isinstance(value, bytes) else str(value)
    text = _REFUSALS.get(code, "invalid KV operation").format(
        max_keys=limits.max_keys, max_app_bytes=limits.max_app_bytes
    )
    raise KVError(
        "type" if code == "type" else "limit" if code in ("keys", "bytes") else "invalid", text
    )


def encode_key(text: str) -> bytes:
    """Keys go to Redis as UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise KVError("invalid", "a KV key must be valid Unicode (no lone surrogates)") from None


@dataclass(frozen=True)
class Op:
    """One checked operation: the Redis command to send and how to read its reply.

    Attributes:
        command: ``("GET", key)`` or ``("EVAL", script, numkeys, ...)``.
        op: the operation's name.
    """

    op: str
    command: tuple[Any, ...]
    limits: Limits

    def result(self, reply: Any) -> Any:
        """The operation's value: bytes or None (get), None (put, delete), an int
        (incr), ``{"keys": [...], "cursor": str | None}`` (list); or KVError."""
        if self.op == "get":
            return reply
        out = script_result(reply, self.limits)
        if self.op == "incr":
            return int(out[1])
        if self.op == "list":
            keys = [k.decode("utf-8") if isinstance(k, bytes) else str(k) for k in out[1]]
            return {"keys": keys, "cursor": keys[-1] if int(out[2]) and keys else None}
        return None


def plan(ns: Namespace, message: Any, limits: Limits) -> Op:
    """Check one untrusted operation (a frame's dict) and plan its Redis command.

    APPSEC: every field is type- and size-checked here; the namespace comes
    from the caller (the worker knows which function is asking), never from
    the message.

    Raises:
        KVError: a bad or oversized field.
    """
    if not isinstance(message, dict) or message.get("op") not in OPS:
        raise KVError("invalid", f"unknown KV operation; use one of {', '.join(sorted(OPS))}")
    op = message["op"]
    if op == "list":
        prefix = check_prefix(message.get("prefix", ""))
        cursor = message.get("cursor")
        if cursor is not None:
            cursor = check_key(cursor)
        start, stop = lex_range(prefix, cursor)
        limit = check_limit(message.get("limit", MAX_LIST))
        return Op(op, ("EVAL", *script_call(ns, op, [start, stop, limit], limits)), limits)
    key = check_key(message.get("key"))
    if op == "get":
        return Op(op, ("GET", encode_key(ns.value_key(key))), limits)
    args: list[Any] = [encode_key(key)]
    if op == "put":
        args += [check_value(message.get("value"), limits), check_ttl(message.get("ttl"))]
    elif op == "incr":
        args.append(check_by(message.get("by", 1)))
    return Op(op, ("EVAL", *script_call(ns, op, args, limits)), limits)
