"""The services of ``make regions``, each started inside its site's namespace.

us-east: PostgreSQL, Redis, the control plane and a runtime node; ap-tokyo: a
runtime node that reaches the database, Redis and the control plane across the
100 ms link, as a node on another continent would. Every process is a child of
:class:`bench.procs.Processes` (killed with its group at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.netns import EAST_IP, TOKYO_IP, Topology
from bench.procs import Processes
from edge.keyring import new_key
from edge.redisserver import redis_binary

PG_PORT = 5432
REDIS_PORT = 6379
PLATFORM_PORT = 8081
EAST_PORT = 8080
TOKYO_PORT = 8090  # another port too: the two nodes share a host name, and nodes go by host:port
EAST_URL = f"http://{EAST_IP}:{EAST_PORT}"
TOKYO_URL = f"http://{TOKYO_IP}:{TOKYO_PORT}"
PLATFORM_URL = f"http://{EAST_IP}:{PLATFORM_PORT}"


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/ensure-system-packages.sh (as root)"
        )
    return str(found[-1])


@dataclass
class Sites:
    """Starts and addresses the services of both sites."""

    topo: Topology
    procs: Processes
    home: Path
    workers: int = 1
    key: str = field(default_factory=new_key)
    token: str = ""
    pgdir: Path | None = None
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, site: str, argv: list[str], env: dict[str, str] | None = None) -> str:
        """Run a command to completion inside ``site``; its stdout."""
        result = subprocess.run(
            [*self.topo.exec(site), *argv], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed in {site}: {result.stderr.strip()}")
        return result.stdout

    def client(self, *args: str) -> Any:
        """``python -m bench.regionclient args...`` in the client's namespace; its JSON."""
        out = self.run("client", [sys.executable, "-m", "bench.regionclient", *args])
        return json.loads(out) if out.strip() else None

    def wait(self, site: str, url: str) -> None:
        self.run(site, [sys.executable, "-m", "bench.regionclient", "wait", url])

    def env(self, site: str) -> dict[str, str]:
        """The ``EDGE_*`` settings of a process at ``site`` (us-east or ap-tokyo)."""
        east = site == "east"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
            "EDGE_HOME": str(self.home / site),
            "EDGE_DATABASE_URL": f"postgresql+psycopg://edge@{EAST_IP}:{PG_PORT}/postgres",
            "EDGE_REDIS_URL": f"redis://{EAST_IP}:{REDIS_PORT}/0",
            "EDGE_SECRET_KEY": self.key,
            "EDGE_BIND": "0.0.0.0",  # inside the site's own namespace
            "EDGE_PLATFORM_PORT": str(PLATFORM_PORT),
            "EDGE_PLATFORM_URL": PLATFORM_URL,
            "EDGE_REGION": "us-east" if east else "ap-tokyo",
            "EDGE_RUNTIME_PORT": str(EAST_PORT if east else TOKYO_PORT),
            "EDGE_PUBLIC_URL": EAST_URL if east else TOKYO_URL,
            "EDGE_RUNTIME_WORKERS": str(self.workers),
            "EDGE_DEPLOY_TIMEOUT": "60",
            "EDGE_TOKEN": self.token,
        }

    def start_data(self) -> None:
        """PostgreSQL and Redis in us-east, listening on its service address only."""
        self.pgdir = Path(tempfile.mkdtemp(prefix="edge-regions-pg-"))
        self.pgdir.chmod(0o755)
        shutil.chown(self.pgdir, "postgres")
        data = self.pgdir / "data"
        as_pg = ["runuser", "-u", "postgres", "--"]
        init = [pg_bin("initdb"), "-D", str(data), "-U", "edge", "--auth=trust", "-E", "UTF8"]
        subprocess.run([*as_pg, *init], capture_output=True, check=True)
        with open(data / "pg_hba.conf", "a") as hba:  # the other site's node connects too
            hba.write("host all all 10.77.0.0/16 trust\n")
        self.procs.start(
            "postgres",
            [
                *self.topo.exec("east"),
                *as_pg,
                pg_bin("postgres"),
                *("-D", str(data), "-p", str(PG_PORT), "-k", str(self.pgdir)),
                *("-c", f"listen_addresses={EAST_IP}", "-c", "fsync=off"),
            ],
        )
        self.procs.start(
            "redis",
            [
                *self.topo.exec("east"),
                redis_binary(),
                *("--bind", EAST_IP, "--port", str(REDIS_PORT), "--protected-mode", "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.home)),
            ],
        )
        ready = [pg_bin("pg_isready"), "-q", "-h", EAST_IP, "-p", str(PG_PORT), "-t", "60"]
        self.run("east", ready)

    def start_platform(self) -> None:
        """The admin token (this migrates the database), then the control plane."""
        edge = [sys.executable, "-m", "edge.cli"]
        self.token = self.run("east", [*edge, "token", "create", "--admin"], self.env("east"))
        self.token = self.token.strip()
        self.procs.start(
            "platform", [*self.topo.exec("east"), *edge, "platform"], env=self.env("east")
        )
        self.wait("east", f"{PLATFORM_URL}/healthz")

    def start_node(self, site: str) -> None:
        argv = [*self.topo.exec(site), sys.executable, "-m", "edge.cli", "runtime"]
        self.nodes[site] = self.procs.start(f"runtime-{site}", argv, env=self.env(site))
        self.wait("client", f"{EAST_URL if site == 'east' else TOKYO_URL}/healthz")

    def kill_node(self, site: str) -> None:
        """SIGKILL a node's whole process group: a crash, not a shutdown."""
        proc = self.nodes.pop(site)
        os.killpg(proc.pid, 9)
        proc.wait()

    def edge(self, *args: str) -> str:
        """An ``edge`` command as an operator in us-east runs it."""
        return self.run("east", [sys.executable, "-m", "edge.cli", *args], self.env("east"))

    def close(self) -> None:
        if self.pgdir is not None:
            shutil.rmtree(self.pgdir, ignore_errors=True)
