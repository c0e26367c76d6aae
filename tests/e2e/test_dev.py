"""`edge init` + `edge dev`: a working folder, live, redeployed on save, with no git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from stack import Foreground, local_env, wait_for


def test_edge_dev_serves_and_hot_swaps_a_folder_on_save(tmp_path: Path) -> None:
    folder = tmp_path / "hello-dev"
    env = local_env(tmp_path / "home", EDGE_RUNTIME_WORKERS="1")
    subprocess.run(
        [sys.executable, "-m", "edge.cli", "init", str(folder)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    url = f"http://127.0.0.1:{env['EDGE_RUNTIME_PORT']}/hello/ada"
    host = {"Host": "hello-dev.edge.localhost"}
    with Foreground(["dev"], folder, env) as dev:
        dev.wait_for_line("watching for changes", timeout=90)
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
        dev.wait_for_line("SyntaxError", timeout=30)
        assert httpx.get(url, headers=host).json() == {"hi": "ada"}  # the last good version
        assert dev.interrupt() == 0
