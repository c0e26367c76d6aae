"""One app's JavaScript never hurts another's: each app has its own V8 host.

Reproduces the red-team finding (issue 14, item 5): with one V8 host per worker,
an app holding most of the host's ArrayBuffer budget made another app's 32 MB
allocation fail with a memory fault. Each app now has its own host process,
running as its app's function uid when the platform is root (and a function's
ArrayBuffers now count against its own memory limit: the hog holds what it may).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from stack import Stack, Workdir

from edge.platform.store import Store
from edge.uids import function_ids, reserve_base

HOG = """
export default {
  fetch() {
    // Hold as many ArrayBuffers as its own limit (memory_mb = 128) allows: past
    // it, the function would be stopped (see edge.runtime.js.buffers).
    globalThis.held = globalThis.held || [];
    while (globalThis.held.length < 3) globalThis.held.push(new ArrayBuffer(32 * 1024 * 1024));
    return new Response(String(globalThis.held.length * 32));
  },
};
"""
NEIGHBOUR = """
export default {
  fetch() {
    const buffer = new Uint8Array(32 * 1024 * 1024);
    buffer.fill(7);
    return new Response(String(buffer[buffer.length - 1]));
  },
};
"""


def deploy(stack: Stack, tmp: Path, name: str, source: str) -> None:
    work = Workdir(tmp / name)
    manifest = '[functions.f]\nentry = "f.js"\nroutes = ["/*"]\nmemory_mb = 128\n'
    work.commit("js", {"edge.toml": manifest, "f.js": source})
    out = work.push(stack.remote(name))
    assert "v1 live at" in out.stderr, out.stderr


def host_processes(stack: Stack) -> dict[int, int]:
    """The V8 host processes of the stack's runtime: pid -> uid."""
    session = stack.processes["runtime"].pid
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) != session:
            continue
        if b"edge.runtime.js.host" in cmdline:
            uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
            found[int(entry.name)] = int(uid.split()[1])
    return found


def test_an_app_holding_array_buffers_does_not_starve_another(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    hog, neighbour = "hog-" + uuid.uuid4().hex[:6], "nbr-" + uuid.uuid4().hex[:6]
    deploy(runtime_stack, tmp_path, hog, HOG)
    deploy(runtime_stack, tmp_path, neighbour, NEIGHBOUR)
    # Fill the hog's isolate in both workers (fresh connections spread the requests).
    held = [runtime_stack.get(runtime_stack.host(hog), "/") for _ in range(6)]
    assert all(resp.status_code == 200 for resp in held), [r.text for r in held]
    assert min(int(resp.text) for resp in held) == 96  # it really holds a lot

    for _ in range(6):
        resp = runtime_stack.get(runtime_stack.host(neighbour), "/")
        assert (resp.status_code, resp.text) == (200, "7"), resp.text

    if os.geteuid() == 0:
        store = Store.from_url(runtime_stack.config.database_url)
        try:
            base = reserve_base(runtime_stack.home)
            uids = {function_ids(app, store.get_app(app).id, base)[0] for app in (hog, neighbour)}
        finally:
            store.close()
        # One host per app and worker, each as its app's uid.
        assert uids <= set(host_processes(runtime_stack).values())
