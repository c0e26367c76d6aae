"""What a function can import: the standard library, ``edge``'s function API,
its release folder and its app's package environment. Nothing else.

The zygote is exec'ed with ``-S`` (no ``site``: no site-packages, no ``.pth``
hooks, no editable-install finders) and a ``PYTHONPATH`` of the platform's
source root plus the folder holding ``msgpack``, because the process code
needs both. A template, before it imports function code, narrows that down:

* ``sys.path`` becomes: the release folder, the package environment, the
  standard library (:func:`import_path`);
* every module loaded from elsewhere (the platform's ``edge.runtime...``,
  ``msgpack``) leaves ``sys.modules`` (:func:`forget_platform`): the code
  already running keeps its references, but an ``import msgpack`` in a
  function now searches the function's own path, and finds the app's copy or
  nothing;
* ``edge`` keeps only its public function API (the modules behind
  ``edge.__all__``: ``edge.Response``, ``edge.Request``) and an empty
  ``__path__``, so ``import edge.platform`` fails too.

So ``import falcon`` in a function is a ``ModuleNotFoundError`` unless the
app's ``requirements.txt`` lists falcon, and two apps may use two versions of
one package. APPSEC: this is hygiene, not the trust boundary (that is the
uid, see ``sandbox``): a function reads no platform code it does not need,
and platform packages never shadow or satisfy an app's requirements.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import ModuleType

_SITE_DIRS = {"site-packages", "dist-packages"}
# edge's function API: ``from edge import Response`` and ``from edge import kv``
# (the process code imports both before any function code runs).
PUBLIC_MODULES = ("edge", "edge.function", "edge.kv")


def stdlib_path() -> list[str]:
    """The ``sys.path`` entries of the standard library (zip, lib, lib-dynload)."""
    roots = {
        os.path.normpath(path)
        for path in (sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"))
        if path
    }
    zipped = f"python{sys.version_info[0]}{sys.version_info[1]}.zip"
    kept = []
    for entry in sys.path:
        if not entry:
            continue
        normal = os.path.normpath(entry)
        if _SITE_DIRS & set(normal.split(os.sep)):
            continue
        inside = any(normal == root or normal.startswith(root + os.sep) for root in roots)
        if inside or os.path.basename(normal) == zipped:
            kept.append(entry)
    return kept


def import_path(root: str, packages: str) -> list[str]:
    """A function's ``sys.path``: its release, its packages, the standard library."""
    return [root, *([packages] if packages else []), *stdlib_path()]


def restrict(path: list[str]) -> None:
    """Make ``path`` the whole import path and forget the platform's modules."""
    sys.path[:] = path
    sys.path_importer_cache.clear()
    forget_platform()


def function_api() -> set[str]:
    """The modules of ``edge``'s public API: :data:`PUBLIC_MODULES`, and those
    behind ``edge.__all__`` (``Response`` lives in ``edge.function``)."""
    edge = sys.modules.get("edge")
    modules = set(PUBLIC_MODULES)
    for name in getattr(edge, "__all__", ()):
        value = getattr(edge, name, None)
        module = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        )
        if isinstance(module, str) and module.startswith("edge."):
            modules.add(module)
    return modules


def forget_platform() -> None:
    """Drop every loaded module that is neither stdlib nor the function API."""
    stdlib = [os.path.normpath(entry) for entry in stdlib_path()]
    api = function_api()
    for name, module in list(sys.modules.items()):
        if name in api or name == "__main__" or _is_stdlib(module, stdlib):
            continue
        del sys.modules[name]
    edge = sys.modules.get("edge")
    if edge is not None:
        for attribute, value in list(vars(edge).items()):
            if isinstance(value, ModuleType) and value.__name__ not in api:
                delattr(edge, attribute)
        edge.__path__ = []


def _is_stdlib(module: ModuleType | None, stdlib: list[str]) -> bool:
    location = getattr(module, "__file__", None)
    if not isinstance(location, str):  # builtin, frozen, or a namespace package
        return getattr(module, "__path__", None) is None or module is None
    normal = os.path.normpath(location)
    return any(normal.startswith(root + os.sep) for root in stdlib)
