"""`edge init` + `edge dev`: a working folder, live, redeployed on save, with no git."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from stack import free_port, wait_for


def test_edge_dev_serves_and_hot_swaps_a_folder_on_save(tmp_path: Path) -> None:
    folder = tmp_path / "hello-dev"
    home = tmp_path / "home"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
        "EDGE_HOME": str(home),
        "EDGE_RUNTIME_PORT": str(port),
        "EDGE_PLATFORM_PORT": str(free_port()),
        "EDGE_RUNTIME_WORKERS": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "edge.cli", "init", str(folder)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    dev = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "dev"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(dev.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    url = f"http://127.0.0.1:{port}/hello/ada"
    host = {"Host": "hello-dev.edge.localhost"}
    try:
        wait_for(
            lambda: any("watching for changes" in line for line in lines),
            timeout=90,
            message="edge dev to start:\n" + "".join(lines),
        )
        assert httpx.get(url, headers=host).json() == {"hello": "ada"}

        (folder / "functions" / "hello.py").write_text(
            "def handle(request):\n    return {'hi': request.params.get('name')}\n"
        )
        wait_for(
            lambda: httpx.get(url, headers=host).json() == {"hi": "ada"},
            timeout=30,
            message="the saved change to be served",
        )

        (folder / "functions" / "hello.py").write_text("def handle(request)\n    return 1\n")
        wait_for(
            lambda: any("SyntaxError" in line for line in lines),
            timeout=30,
            message="the syntax error to be reported",
        )
        assert httpx.get(url, headers=host).json() == {"hi": "ada"}  # the last good version
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        finally:
            if dev.poll() is None:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
            if dev.stdout:
                dev.stdout.close()
    assert dev.returncode == 0
