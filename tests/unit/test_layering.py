"""The package's layering, as the design states it, checked on the code itself.

* the runtime never imports the control plane (it reads routes through
  ``edge.snapshot``), and a runtime worker never loads alembic;
* the shared modules import neither plane;
* code that runs in function processes loads no event loop, web framework,
  Redis or database client.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import edge

PACKAGE = Path(edge.__file__).resolve().parent
SHARED = (
    "snapshot.py",
    "uids.py",
    "artifacts.py",
    "errors.py",
    "routes.py",
    "manifest.py",
    "keyring.py",
    "secretenv.py",
    "kvstore.py",
    "kv.py",
    "egress.py",
)
# Everything in this folder runs in the zygote, templates and instances.
FUNCTION_PROCESS = tuple(
    f"edge.runtime.python.process.{path.stem}"
    for path in sorted((PACKAGE / "runtime" / "python" / "process").glob("*.py"))
    if path.stem != "__init__"
)
WORKER_SIDE = ("edge.runtime.server", "edge.runtime.app", "edge.runtime.worker", "edge.cli")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` statement names anywhere in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def loaded_after_import(modules: tuple[str, ...]) -> set[str]:
    """``sys.modules`` of a fresh interpreter after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_the_runtime_never_imports_the_control_plane() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in imported_modules(path) if name.startswith("edge.platform")
        )
        for path in (PACKAGE / "runtime").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_shared_modules_import_neither_plane() -> None:
    for name in SHARED:
        planes = [
            module
            for module in imported_modules(PACKAGE / name)
            if module.startswith(("edge.platform", "edge.runtime"))
        ]
        assert planes == [], f"edge/{name} imports {planes}"
    exporter = imported_modules(PACKAGE / "platform" / "artifacts.py")
    assert not any(name.startswith("edge.runtime") for name in exporter)


def test_function_processes_load_no_event_loop_framework_or_clients() -> None:
    assert len(FUNCTION_PROCESS) >= 5
    loaded = loaded_after_import(FUNCTION_PROCESS)
    forbidden = {"asyncio", "falcon", "redis", "sqlalchemy", "alembic", "uvloop", "gunicorn"}
    assert loaded & forbidden == set()
    assert not any(name.startswith("edge.platform") for name in loaded)


def test_a_runtime_worker_does_not_load_alembic() -> None:
    loaded = loaded_after_import((*WORKER_SIDE, "edge.platform.store"))
    assert "edge.runtime.worker" in loaded  # the check really imported the worker side
    assert "alembic" not in loaded
