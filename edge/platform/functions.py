"""A release's functions: their code compiled at push, their rows with content hashes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from edge.artifacts import SourceFile
from edge.manifest import FunctionSpec, Manifest
from edge.platform.store import FunctionRecord
from edge.sources import Source


def compile_python(source: Source, manifest: Manifest) -> list[str]:
    """A problem line per Python entry that does not compile."""
    problems = []
    for spec in manifest.functions:
        if spec.runtime != "python":
            continue
        code = source.read(spec.path) or b""
        try:
            compile(code, spec.path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{spec.path}:{exc.lineno or 0}: SyntaxError: {exc.msg}")
        except ValueError as exc:  # e.g. null bytes in the source
            problems.append(f"{spec.path}: cannot compile: {exc}")
    return problems


def function_records(
    files: list[SourceFile], manifest: Manifest, packages: str = ""
) -> list[FunctionRecord]:
    """Store rows for every function, each with its content hash.

    A function's hash covers its own config, its package environment and
    every file of the tree except edge.toml and the other functions' entry
    files: a change to one function's entry file leaves its siblings' hashes
    (and warm pools) untouched, while a change to a shared module changes them
    all. The hash also decides which functions the push-time load check skips.
    """
    entries = {spec.path for spec in manifest.functions}
    records = []
    for spec in manifest.functions:
        identity = _spec_identity(spec)
        if packages:
            identity["packages"] = packages
        digest = hashlib.sha256(json.dumps(identity).encode())
        for file in files:
            if file.path == "edge.toml" or (file.path in entries and file.path != spec.path):
                continue
            digest.update(f"{file.path}\0{file.digest}\n".encode())
        records.append(FunctionRecord.from_spec(spec, digest.hexdigest()))
    return records


def _spec_identity(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "runtime": spec.runtime,
        "path": spec.path,
        "handler": spec.handler,
        "env": spec.env,
        "memory_mb": spec.memory_mb,
        "timeout_ms": spec.timeout_ms,
        "min_warm": spec.min_warm,
        "max_instances": spec.max_instances,
        **({"kind": spec.kind} if spec.kind else {}),
    }
