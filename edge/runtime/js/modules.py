"""JavaScript modules: transform, deploy-time check, evaluation, and the d() contract.

A function's ``.js``/``.mjs`` entry is an ES module in the Cloudflare Workers
style. mini-racer only runs classic scripts, so the module is transformed
minimally, line for line (line numbers in errors and stacks stay the user's):

* ``export default <expr>`` becomes ``__edge_exports.default = <expr>`` (this
  covers ``export default { fetch }``, ``export default function ...`` and
  ``export default class ...``, as expressions);
* ``export`` in front of ``function``, ``async function``, ``class``,
  ``const``, ``let`` or ``var`` is dropped (named exports are not used);
* ``export { a, b as default }`` is dropped, and ``b`` becomes the default;
* ``import`` statements and re-exports (``export * from``, ``export {..} from``)
  are rejected: bundle the code into one file (``esbuild --bundle --format=esm``).

These forms are recognised at the start of a line only. The module body then
runs inside ``async function (__edge_exports) { "use strict"; ... }``, so
top-level ``await`` works and top-level names stay private to the module.

:func:`check_js` and :func:`check_js_many` parse modules in V8 inside a
short-lived ``python -m edge.runtime.js.host --check`` process, because the
caller (the git hook, a runtime worker) may fork and V8 must not be
initialised in a process that later forks. :func:`evaluate_module` runs a module
in an isolate of the V8 host (:mod:`edge.runtime.js.host`); the functions at
the end encode requests for, and check responses from, ``js/dispatch.js``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, BinaryIO

from py_mini_racer import JSEvalException, JSOOMException, JSParseException, MiniRacer
from py_mini_racer._exc import JSTerminatedException

from edge.runtime.headers import header_passes
from edge.runtime.js.client import host_command, host_env
from edge.runtime.wire import CHUNK_MAX

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 60.0
# ``import`` as a whole word (not ``importance:``), then a binding, ``{``, ``*`` or a
# specifier; not ``import(`` or ``import.meta``.
_IMPORT = re.compile(r"^[ \t]*import(?![\w$])(?=[ \t]*[\w{*'\"$])(?![ \t]*[.(])", re.M)
_REEXPORT = re.compile(r"^[ \t]*export[ \t]*(?:\*|\{[^}]*\}[ \t]*from\b)", re.M)
_EXPORT_DEFAULT = re.compile(r"^([ \t]*)export[ \t]+default\b[ \t]*", re.M)
_EXPORT_DECL = re.compile(
    r"^([ \t]*)export(?=[ \t]+(?:async[ \t]+function|function|class|const|let|var)\b)", re.M
)
_EXPORT_LIST = re.compile(r"^[ \t]*export[ \t]*\{([^}]*)\}[ \t]*;?", re.M)
_DEFAULT_ALIAS = re.compile(r"^([A-Za-z_$][\w$]*)\s+as\s+default$")
DEFAULT_TARGET = "__edge_exports.default = "
HINT = "bundle the module into one file (e.g. esbuild --bundle --format=esm)"
RUNTIME_FILES = (
    "prelude.js",
    "encodings.js",
    "encoding.js",
    "events.js",
    "streams.js",
    "writable.js",
    "transform.js",
    "blob.js",
    "crypto.js",
    "url.js",
    "kv.js",
    "fetch.js",
    "sharedmemory.js",
    "dispatch.js",
)
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})
RESPONSE_ERRORS = (TypeError, ValueError, binascii.Error)
STREAMED = 3  # the bodyKind of a streamed response's head (js/dispatch.js)
TAIL = 4  # the bodyKind of a text body sent after d()'s JSON (js/dispatch.js)
BODY_KINDS = frozenset({0, 1, 2, STREAMED})


class ModuleSourceError(Exception):
    """The module uses a form this platform does not support; the message is
    one line, ``<file>:<line>: <problem>``."""


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def _blank(text: str) -> str:
    """Spaces in place of ``text``, keeping its newlines (so lines stay put)."""
    return re.sub(r"[^\n]", " ", text)


def transform_module(source: str, filename: str) -> str:
    """Rewrite an ES module into the body of the module function (see above).

    Raises:
        ModuleSourceError: on ``import``, re-exports, or no default export.
    """
    for pattern, what in ((_IMPORT, "import statements"), (_REEXPORT, "re-exports")):
        match = pattern.search(source)
        if match:
            line = _line_of(source, match.start())
            raise ModuleSourceError(f"{filename}:{line}: {what} are not supported; {HINT}")
    defaults: list[str] = []

    def export_list(match: re.Match[str]) -> str:
        for spec in match.group(1).split(","):
            alias = _DEFAULT_ALIAS.match(spec.strip())
            if alias:
                defaults.append(alias.group(1))
        return _blank(match.group(0))

    code = _EXPORT_LIST.sub(export_list, source)
    code, count = _EXPORT_DEFAULT.subn(lambda m: m.group(1) + DEFAULT_TARGET, code)
    code = _EXPORT_DECL.sub(lambda m: m.group(1) + "      ", code)
    if count + len(defaults) == 0:
        inline = re.search(r"\bexport\s*(?:\{|default\b)", code)
        raise ModuleSourceError(
            f"{filename}: no `export default` found"
            + (
                " at the start of a line (is the module minified onto one line?)"
                if inline
                else "; a function module must end in "
                "`export default { async fetch(request, env, ctx) { ... } }`"
            )
        )
    if count + len(defaults) > 1:
        raise ModuleSourceError(f"{filename}: more than one `export default`")
    if defaults:
        code += f"\n;{DEFAULT_TARGET}{defaults[0]};"
    return code


def source_url(filename: str) -> str:
    """The ``//# sourceURL=`` comment naming the file in V8 messages and stacks."""
    # APPSEC: the name comes from the pushed repo; keep it on one line.
    return "\n//# sourceURL=" + re.sub(r"[\x00-\x20\x7f]", "_", filename)


def module_script(code: str, filename: str) -> str:
    """The classic script that defines the module function (line 1 stays line 1).

    Its last statement marks the exports evaluated: a body that ran to its end
    without awaiting is bound in the same call (``runModule`` in js/dispatch.js)."""
    return (
        '__edgeInternal.moduleFn = (async function (__edge_exports) {"use strict";'
        + code
        + '\n;__edge_exports["edge:evaluated"] = true;\n});'
        + source_url(filename)
    )


def first_line(message: str, filename: str | None = None) -> str:
    """The first line of a V8 message, naming ``filename`` where V8 said ``<anonymous>``.

    (V8 takes the ``sourceURL`` comment into account only when it got that far.)
    """
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    if filename is not None and line.startswith("<anonymous>:"):
        line = filename + line[len("<anonymous>") :]
    if line.endswith(("Unexpected token 'export'", "Cannot use import statement outside a module")):
        line += " (import/export are recognised only at the start of a line; bundle without "
        line += "putting the whole module on one line)"
    return line


def check_in_v8(source: str, filename: str) -> str | None:
    """Parse one module in V8 (call only inside the check process).

    The module is first compiled as a strict classic script that throws before
    running anything, which gives exact line numbers even for unbalanced braces;
    if that fails only for module-specific reasons (top-level ``await``, a name
    that clashes with a script global), the runtime's wrapper decides.
    """
    try:
        code = transform_module(source, filename)
    except ModuleSourceError as exc:
        return str(exc)
    with MiniRacer() as mr:
        try:
            mr.eval('"use strict";throw 0;' + code + source_url(filename))
        except JSParseException as exc:
            message = first_line(str(exc), filename)
            if "await is only valid" not in message and "already been declared" not in message:
                return message
        except JSEvalException:
            return None  # it parsed and then threw 0, as planned
        try:
            mr.eval("var __edgeInternal = {};" + module_script(code, filename))
        except JSEvalException as exc:
            return first_line(str(exc), filename)
    return None


def serve_checks(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The ``--check`` mode: JSON ``{file: source}`` in, ``{file: error}`` out."""
    files = json.loads(stdin.read().decode("utf-8"))
    errors: dict[str, str] = {}
    for filename, source in files.items():
        problem = check_in_v8(source, filename)
        if problem is not None:
            errors[filename] = problem
    stdout.write(json.dumps(errors).encode("utf-8"))
    stdout.flush()
    return 0


def check_js_many(files: dict[str, str]) -> dict[str, str]:
    """Check many modules in one subprocess.

    Args:
        files: file name (as shown in messages, e.g. ``functions/hello.js``) to source.

    Returns:
        The files that do not load, each with a one-line message such as
        ``functions/hello.js:3: SyntaxError: Unexpected token '}'``.
    """
    if not files:
        return {}
    try:
        done = subprocess.run(
            host_command("--check"),
            input=json.dumps(files).encode("utf-8"),
            capture_output=True,
            timeout=CHECK_TIMEOUT_S,
            env=host_env(),
            cwd="/",
            check=False,
        )
        result: Any = json.loads(done.stdout.decode("utf-8")) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError) as exc:
        logger.error("JavaScript check failed: %s", exc)
        result = None
    if not isinstance(result, dict):
        # APPSEC: a checker that cannot run must reject the push, never wave it through.
        reason = "the V8 syntax check did not complete"
        return {name: f"{name}: {reason}" for name in files}
    return {str(k): str(v) for k, v in result.items()}


def check_js(source: str, filename: str) -> str | None:
    """Check one module: ``None`` when it loads, else a one-line message."""
    return check_js_many({filename: source}).get(filename)


def main() -> int:
    """Entry for ``python -m edge.runtime.js.host --check``."""
    return serve_checks(sys.stdin.buffer, sys.stdout.buffer)


class LoadError(Exception):
    """A module did not compile or evaluate in its isolate; the message is one line."""


@dataclass(frozen=True)
class ModuleSpec:
    """A function version as the V8 host loads it."""

    name: str
    filename: str
    source: str
    memory_mb: int
    timeout_ms: int
    env: dict[str, str]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ModuleSpec:
        return cls(
            str(raw["name"]),
            str(raw["filename"]),
            str(raw["source"]),
            int(raw["memory_mb"]),
            int(raw["timeout_ms"]),
            {str(k): str(v) for k, v in raw["env"].items()},
        )


def _too_slow(spec: ModuleSpec) -> LoadError:
    return LoadError(f"{spec.filename}: module evaluation exceeded {spec.timeout_ms} ms")


async def eval_limited(mr: MiniRacer, code: str, spec: ModuleSpec, timeout_s: float) -> Any:
    """Evaluate load-time code, turning every failure into a one-line LoadError."""
    try:
        return await asyncio.wait_for(mr.eval_cancelable(code), timeout_s)
    except TimeoutError:
        raise _too_slow(spec) from None
    except JSOOMException:
        raise LoadError(f"{spec.filename}: memory limit of {spec.memory_mb} MB exceeded") from None
    except JSEvalException as exc:
        raise LoadError(first_line(str(exc), spec.filename)) from None


async def evaluate_module(
    mr: MiniRacer,
    spec: ModuleSpec,
    pinged: asyncio.Event,
    run_calls: Callable[[list[Any]], Awaitable[list[Any]]],
) -> None:
    """Evaluate ``spec``'s module in ``mr`` (which has the runtime prelude and a ping).

    The module body is an async function (top-level ``await``). One that ran
    to its end without awaiting is bound in the one call that defines and runs
    it (each call is a wake-up of the isolate's thread: 0.1 ms back to back,
    0.8 ms after 0.1 s idle on these machines); else evaluation finishes when
    its promise settles, and ``pinged`` is set when that happens. Host calls
    made meanwhile (``await crypto.subtle.importKey(...)`` at the top level)
    are answered with ``run_calls``.

    Raises:
        LoadError: a syntax error, an exception, no fetch handler, or a limit.
    """
    deadline = time.monotonic() + spec.timeout_ms / 1000
    try:
        code = transform_module(spec.source, spec.filename)
    except ModuleSourceError as exc:
        raise LoadError(str(exc)) from None
    seed = base64.b64encode(os.urandom(44)).decode()  # ChaCha20 key + nonce for crypto.*
    setup = json.dumps({"env": spec.env, "seed": seed})
    # One script (one thread hand-off): define the module function, then run it.
    # The calls go after the module's last line, so its line numbers stay put.
    run = f"__edgeInternal.setup({setup}), __edgeInternal.runModule({json.dumps(spec.filename)})"
    script = module_script(code, spec.filename) + "\n;" + run
    pinged.clear()
    left = max(deadline - time.monotonic(), 0.001)
    status = json.loads(str(await eval_limited(mr, script, spec, left)))
    while True:
        if status["state"] == "ok":
            return
        if status["state"] == "error":
            raise LoadError(f"{spec.filename}: {first_line(status['error'])}")
        replies: list[Any] = []
        if status["calls"]:
            try:
                replies = await asyncio.wait_for(run_calls(status["calls"]), left)
            except TimeoutError:
                raise _too_slow(spec) from None
        else:
            try:
                await asyncio.wait_for(pinged.wait(), deadline - time.monotonic())
            except TimeoutError:
                raise _too_slow(spec) from None
        pinged.clear()
        code = f"__edgeInternal.loadStatus({json.dumps(replies)})"
        left = max(deadline - time.monotonic(), 0.001)
        status = json.loads(str(await eval_limited(mr, code, spec, left)))


def runtime_script() -> str:
    """The Web API prelude, URL and dispatcher, as one classic script."""
    folder = resources.files("edge.runtime").joinpath("js")
    parts = [folder.joinpath(name).read_text(encoding="utf-8") for name in RUNTIME_FILES]
    return "\n".join(parts) + "\n//# sourceURL=edge:runtime.js"


def request_body(body: bytes) -> tuple[int, str]:
    """A request body for d(): UTF-8 text as is (kind 1), other bytes as base64 (kind 2)."""
    try:
        return 1, body.decode("utf-8")
    except UnicodeDecodeError:
        return 2, base64.b64encode(body).decode("ascii")


async def dispatch_result(task: Awaitable[Any], name: str) -> str | bool | None:
    """A d() call's JSON, ``None`` if it was terminated, ``False`` if it failed."""
    try:
        return str(await task)
    except (asyncio.CancelledError, JSTerminatedException, JSOOMException):
        return None  # terminated on purpose (or by the heap limit): probe next
    except JSEvalException as exc:
        logger.error("%s: dispatcher failed: %s", name, exc)
        return False


def parse_result(raw: str) -> Any:
    """A d() result: its JSON, with the text bodies that follow it put back in
    their items (bodyKind :data:`TAIL` becomes 1, its length the text).

    A length that does not fit the texts leaves its item with an unknown kind,
    which :func:`response_fields` refuses.

    Raises:
        ValueError: the JSON is malformed.
    """
    head, _, texts = raw.partition("\n")
    result = json.loads(head)
    if texts and result.__class__ is list and result and result[0].__class__ is list:
        _put_texts(result[0], texts)
    return result


def _put_texts(done: list[Any], texts: str) -> None:
    # Lengths count UTF-16 code units, as JavaScript does: the same as Python's
    # code points unless a text holds a character outside the BMP.
    wide = not texts.isascii()
    units: str | bytes = texts.encode("utf-16-le") if wide else texts
    step = 2 if wide else 1
    at = 0
    for item in done:
        if item.__class__ is not list or len(item) != 7 or item[3] != TAIL:
            continue
        size = item[4]
        if type(size) is not int or size < 0 or at + size * step > len(units):
            item[3] = -1
            continue
        piece = units[at : at + size * step]
        at += size * step
        try:
            item[4] = piece.decode("utf-16-le") if isinstance(piece, bytes) else piece
        except UnicodeDecodeError:
            item[3] = -1
            continue
        item[3] = 1


def response_fields(item: list[Any]) -> tuple[int, list[list[str]], bytes, list[Any], str | None]:
    """Type-check one finished response from d() (untrusted, from the function).

    Raises:
        TypeError, ValueError, binascii.Error: the item is malformed.
    """
    _, status, headers, kind, body, logs, error = item
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"bad status {status!r}")
    if kind not in BODY_KINDS:
        raise ValueError(f"bad body kind {kind!r}")
    pairs = []
    for name, value in headers:
        if not (isinstance(name, str) and isinstance(value, str)):
            raise TypeError("a header is not a [name, value] pair of strings")
        if header_passes(name, value):  # APPSEC: see edge.runtime.headers
            pairs.append([name, value])
    data = body.encode("utf-8") if kind == 1 else b""
    if kind == 2:
        data = base64.b64decode(body, validate=True)
    return status, pairs, data, log_records(logs), None if error is None else str(error)


def log_records(logs: list[Any]) -> list[list[Any]]:
    """Log lines from d() (``[ms, level, message]``) as ``[s, level, message]``."""
    if not logs:
        return []
    return [
        [float(ts) / 1000, level if level in LOG_LEVELS else "info", str(msg)]
        for ts, level, msg in logs
    ]


async def dispatch_bytes(mr: MiniRacer, key: Any) -> bytes | None:
    """The stream bytes of a d() result (``__edge.b(key)``), copied out of V8;
    ``None`` if there are none or they cannot be had."""
    if type(key) is not int or key <= 0:
        return None
    task = asyncio.ensure_future(mr.eval_cancelable(f"__edge.b({key})"))
    try:
        data = await task
    except (asyncio.CancelledError, JSEvalException):
        return None
    # The memoryview is V8's own memory: copy it now, before the key is released.
    return bytes(data) if isinstance(data, memoryview) else None


def stream_chunks(items: list[Any], data: bytes | None) -> list[Any]:
    """A d() result's stream items with each chunk's ``[id, length]`` made
    ``[id, bytes]`` from ``data``, or ``[id, False]`` when its bytes are missing or
    its length is wrong (the relay refuses those). Ends pass as they are."""
    if not items:
        return []
    out: list[Any] = []
    at = 0
    for item in items:
        length = item[1] if isinstance(item, list) and len(item) == 2 else None
        if type(length) is not int:
            out.append(item)
            continue
        fits = data is not None and 0 < length <= CHUNK_MAX and at + length <= len(data)
        out.append([item[0], data[at : at + length] if data is not None and fits else False])
        at += max(length, 0)
    return out
