"""`edge up --demo` (what `make run` runs): everything starts, the sample app answers,
Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from stack import free_port, wait_for


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_edge_up_demo_serves_the_sample_app_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
        "EDGE_HOME": str(tmp_path / "home"),
        "EDGE_RUNTIME_PORT": str(port),
        "EDGE_PLATFORM_PORT": str(free_port()),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "up", "--demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(up.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    children: set[int] = set()
    try:
        wait_for(
            lambda: any("Ctrl-C stops everything" in line for line in lines),
            timeout=120,
            message="edge up to print its banner:\n" + "".join(lines),
        )
        text = "".join(lines)
        assert "v1 live at http://shop.edge.localhost" in text
        assert f"curl http://shop.edge.localhost:{port}/api/users/42" in text
        host = {"Host": "shop.edge.localhost"}
        user = httpx.get(f"http://127.0.0.1:{port}/api/users/42", headers=host).json()
        assert user["name"] == "Arthur Dent"
        js = httpx.get(f"http://127.0.0.1:{port}/js/hello?name=ci", headers=host).json()
        assert js == {"message": "Hello, ci!", "runtime": "v8"}
        children = descendants(up.pid)
        assert len(children) >= 5  # redis, platform and runtime masters, their workers
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        if up.stdout:
            up.stdout.close()
    wait_for(
        lambda: (
            not [
                p
                for p in children
                if Path(f"/proc/{p}").exists() and "(Z)" not in Path(f"/proc/{p}/stat").read_text()
            ]
        ),
        timeout=30,
        message="every process of edge up to exit",
    )
