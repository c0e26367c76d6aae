"""`edge up --demo` (what `make run` runs): everything starts, the sample app answers,
Ctrl-C stops every process, in order; a SIGKILLed `edge up` leaves none behind."""

from __future__ import annotations

from pathlib import Path

import httpx
from stack import Foreground, descendants, local_env, running, wait_for


def test_edge_up_demo_serves_the_sample_app_and_stops_cleanly(tmp_path: Path) -> None:
    env = local_env(tmp_path / "home")
    port = env["EDGE_RUNTIME_PORT"]
    with Foreground(["up", "--demo"], tmp_path, env) as up:
        up.wait_for_line("Ctrl-C stops everything", timeout=120)
        assert "v1 live at http://shop.edge.localhost" in up.output
        assert f"curl http://shop.edge.localhost:{port}/api/users/42" in up.output
        dashboard = f"http://127.0.0.1:{env['EDGE_PLATFORM_PORT']}/"
        assert f"dashboard            {dashboard}" in up.output
        assert "Sign in to Edge" in httpx.get(dashboard, follow_redirects=True).text
        host = {"Host": "shop.edge.localhost"}
        user = httpx.get(f"http://127.0.0.1:{port}/api/users/42", headers=host).json()
        assert user["name"] == "Arthur Dent"
        js = httpx.get(f"http://127.0.0.1:{port}/js/hello?name=ci", headers=host).json()
        assert js == {"message": "Hello, ci!", "runtime": "v8"}
        children = descendants(up.proc.pid)
        assert len(children) >= 5  # redis, platform and runtime masters, their workers
        serving = len(up.output)
        assert up.interrupt() == 0
        # Ctrl-C reaches edge up alone, which stops the servers before Redis: none
        # of them was cut short (gunicorn's SIGINT) or lost Redis under its last
        # flush, and no worker's exit killed another's function templates.
        stopping = up.output[serving:]
        for bad in ("WARNING", "ERROR", "Traceback"):
            assert bad not in stopping, stopping
    wait_for(
        lambda: not [p for p in children if running(p)],
        timeout=30,
        message="every process of edge up to exit",
    )


def test_no_process_outlives_a_killed_edge_up(tmp_path: Path) -> None:
    """Its children run in process groups of their own (so that Ctrl-C reaches
    edge up alone); they still die with it, by PR_SET_PDEATHSIG."""
    env = local_env(tmp_path / "home")
    with Foreground(["up"], tmp_path, env) as up:
        up.wait_for_line("Ctrl-C stops everything", timeout=120)
        children = descendants(up.proc.pid)
        assert len(children) >= 5
        up.proc.kill()
        up.proc.wait()
        wait_for(
            lambda: not [p for p in children if running(p)],
            timeout=40,
            message="every child of the SIGKILLed edge up to exit",
        )
