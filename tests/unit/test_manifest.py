"""edge.toml v1: every rule with a valid and an invalid case, and the sources."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import ManifestError
from edge.manifest import (
    FunctionSpec,
    Manifest,
    app_name_problem,
    load_manifest,
    parse_manifest,
)
from edge.snapshot import is_label
from edge.sources import DirSource, GitTreeSource

FULL = """\
app = "shop"

[env]
API_BASE = "https://api.example.com"
TABLE = "global"

[defaults]
memory_mb = 128
timeout_ms = 10000
regions = ["us-east"]

[functions.users]
entry = "functions/users.py:handle"
routes = ["/api/users", "/api/users/:id", "GET /api/users/*"]
memory_mb = 64
timeout_ms = 5000
regions = ["us-east", "ap-tokyo"]
env = { TABLE = "users" }
min_warm = 1
max_instances = 8

[functions.hello]
entry = "js/hello.mjs"
routes = ["/"]
"""


def _doc(function: str = "", top: str = "") -> str:
    """A minimal valid manifest; ``function`` lines add to or replace ``functions.users`` keys."""
    base = {"entry": 'entry = "functions/users.py"', "routes": 'routes = ["/api/users"]'}
    lines = [line for key, line in base.items() if not function.startswith(f"{key} =")]
    return "\n".join([top, "[functions.users]", *lines, function, ""])


def _problems(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, **kwargs)
    problems = info.value.problems
    assert problems
    for line in problems:
        assert line.startswith("edge.toml: ")
        assert "\n" not in line
        assert len(line) < 200
    return problems


def test_full_example_from_the_design() -> None:
    manifest = parse_manifest(FULL)
    assert manifest.app == "shop"
    users = manifest.function("users")
    assert (users.path, users.handler, users.runtime) == ("functions/users.py", "handle", "python")
    assert [r.text for r in users.routes] == ["/api/users", "/api/users/:id", "GET /api/users/*"]
    assert (users.memory_mb, users.timeout_ms, users.min_warm, users.max_instances) == (
        64,
        5000,
        1,
        8,
    )
    assert users.regions == ("us-east", "ap-tokyo")
    assert users.env == (("API_BASE", "https://api.example.com"), ("TABLE", "users"))
    hello = manifest.function("hello")
    assert (hello.runtime, hello.handler, hello.memory_mb) == ("js", "", 128)
    assert hello.env_dict() == {"API_BASE": "https://api.example.com", "TABLE": "global"}
    assert [f.name for f in manifest.functions] == ["users", "hello"]


def test_builtin_defaults() -> None:
    spec = parse_manifest(_doc()).function("users")
    assert (
        spec.memory_mb,
        spec.timeout_ms,
        spec.regions,
        spec.min_warm,
        spec.max_instances,
        spec.env,
    ) == (128, 10000, ("us-east",), 0, 8, ())
    assert parse_manifest(_doc()).app is None


def test_defaults_table_applies_and_functions_override() -> None:
    top = '[defaults]\nmemory_mb = 256\nregions = ["eu-west"]\nmax_instances = 4\n'
    spec = parse_manifest(_doc("timeout_ms = 200\nmax_instances = 2", top)).function("users")
    assert (spec.memory_mb, spec.timeout_ms, spec.regions, spec.max_instances) == (
        256,
        200,
        ("eu-west",),
        2,
    )


def test_unknown_function_raises_key_error() -> None:
    with pytest.raises(KeyError):
        parse_manifest(_doc()).function("nope")


def test_json_roundtrip() -> None:
    manifest = parse_manifest(FULL)
    data = json.loads(json.dumps(manifest.to_json()))
    assert Manifest.from_json(data) == manifest
    assert FunctionSpec.from_json(data["functions"][0]) == manifest.functions[0]
    assert data["functions"][0]["routes"][2] == "GET /api/users/*"
    with pytest.raises(ValueError, match="version"):
        Manifest.from_json({**data, "version": 2})


@pytest.mark.parametrize(
    ("function", "top", "field", "expected"),
    [
        ("memory_mb = 16", "", "memory_mb", 16),
        ("memory_mb = 512", "", "memory_mb", 512),
        ("timeout_ms = 1", "", "timeout_ms", 1),
        ("timeout_ms = 30000", "", "timeout_ms", 30000),
        ("min_warm = 0", "", "min_warm", 0),
        ("min_warm = 8", "", "min_warm", 8),
        ("min_warm = 3\nmax_instances = 3", "", "min_warm", 3),
        ("max_instances = 1", "", "max_instances", 1),
        ("max_instances = 64", "", "max_instances", 64),
        ('regions = ["us-east", "ap-tokyo"]', "", "regions", ("us-east", "ap-tokyo")),
        ('entry = "functions/users.py:main"', "", "handler", "main"),
        ('entry = "./functions/./users.py"', "", "path", "functions/users.py"),
        ('entry = "functions/users.js"', "", "runtime", "js"),
        ('entry = "functions/users.mjs"', "", "handler", ""),
        ('entry = "u.py"', "", "path", "u.py"),
        ('routes = ["/a", "GET /a", "/a/:id", "/a/*"]', "", "routes", 4),
        ('env = { A_1 = "x" }', '[env]\n_B = "y"', "env", (("A_1", "x"), ("_B", "y"))),
        ('env = { B = "fn" }', '[env]\nB = "top"', "env", (("B", "fn"),)),
        ("", 'app = "a1-b2"', "app", "a1-b2"),
        ("", 'app = "' + "a" * 63 + '"', "app", "a" * 63),
        ("", "[defaults]\nmin_warm = 2", "min_warm", 2),
    ],
)
def test_valid_values(function: str, top: str, field: str, expected: object) -> None:
    manifest = parse_manifest(_doc(function, top))
    value: Any = manifest.app if field == "app" else getattr(manifest.function("users"), field)
    assert (len(value) if field == "routes" else value) == expected


@pytest.mark.parametrize(
    ("function", "top", "expected"),
    [
        # limits
        (
            "timeout_ms = 60000",
            "",
            "edge.toml: functions.users.timeout_ms: 60000 > 30000 (the maximum; lower it)",
        ),
        ("timeout_ms = 0", "", "functions.users.timeout_ms: 0 < 1 (the minimum; raise it)"),
        ("memory_mb = 8", "", "functions.users.memory_mb: 8 < 16 (the minimum; raise it)"),
        ("memory_mb = 1024", "", "functions.users.memory_mb: 1024 > 512 (the operator's cap"),
        ("min_warm = -1", "", "functions.users.min_warm: -1 < 0"),
        ("min_warm = 9", "", "functions.users: min_warm 9 > max_instances 8"),
        (
            "max_instances = 2",
            "[defaults]\nmin_warm = 3",
            "functions.users: min_warm 3 > max_instances 2",
        ),
        ("max_instances = 0", "", "functions.users.max_instances: 0 < 1"),
        ("max_instances = 65", "", "functions.users.max_instances: 65 > 64"),
        ("", "[defaults]\ntimeout_ms = 99999", "defaults.timeout_ms: 99999 > 30000"),
        ("", "[defaults]\nmin_warm = 9", "defaults: min_warm 9 > max_instances 8"),
        # types
        (
            'memory_mb = "128"',
            "",
            'functions.users.memory_mb: "128" must be an integer (write 128 without quotes)',
        ),
        ("memory_mb = true", "", "functions.users.memory_mb: true must be an integer"),
        ("timeout_ms = 10.5", "", "functions.users.timeout_ms: 10.5 must be an integer"),
        ("max_instances = [1]", "", "functions.users.max_instances: [1] must be an integer"),
        # regions
        ("regions = []", "", "functions.users.regions: [] must be a non-empty list"),
        ('regions = "us-east"', "", 'regions: "us-east" must be a non-empty list'),
        ('regions = ["US_East"]', "", 'functions.users.regions[0]: "US_East" is not a region name'),
        ("regions = [1]", "", "functions.users.regions[0]: 1 is not a region name"),
        ('regions = ["a", "b", "a"]', "", 'functions.users.regions[2]: "a" repeats'),
        # entry
        ("", "", None),
        ("entry = 5", "", "functions.users.entry: 5 must be a string"),
        ('entry = "/srv/x.py"', "", "must be relative to the repo root"),
        ('entry = "../x.py"', "", "must not contain '..'"),
        ('entry = "a/../../x.py"', "", "must not contain '..'"),
        ('entry = "a\\\\b.py"', "", "must use '/' between folders"),
        ('entry = "a//b.py"', "", "empty path component"),
        ('entry = "a/\\u0000.py"', "", "control characters"),
        ('entry = "x.rb"', "", '"x.rb" must end in .py, .js or .mjs'),
        ('entry = "x.py/"', "", "empty path component"),
        ('entry = "x.js:handle"', "", '"x.js:handle" takes no :name'),
        ('entry = "x.py:not-ok"', "", 'names handler "not-ok", not a Python identifier'),
        ('entry = "x.py:class"', "", "not a Python identifier"),
        ('entry = "x.py:"', "", "not a Python identifier"),
        # routes
        ("routes = []", "", "functions.users.routes: [] is not a non-empty list"),
        ('routes = "/x"', "", 'functions.users.routes: "/x" is not a non-empty list'),
        ("routes = [1]", "", "functions.users.routes[0]: 1 must be a string"),
        (
            'routes = ["api"]',
            "",
            "functions.users.routes[0]: \"api\": the path must start with '/'",
        ),
        (
            'routes = ["/a/:id", "/a/:name"]',
            "",
            'functions.users.routes[1]: "/a/:name" is the same route as "/a/:id" '
            "(functions.users.routes[0])",
        ),
        # env
        ('env = { "1X" = "v" }', "", "functions.users.env.1X: invalid variable name"),
        ('env = { "A.B" = "v" }', "", 'functions.users.env."A.B": invalid variable name'),
        ("env = { PORT = 8080 }", "", "functions.users.env.PORT: 8080 must be a string (quote it)"),
        ('env = { A = "a\\u0000b" }', "", "functions.users.env.A: must not contain a NUL"),
        ('env = "A=1"', "", 'functions.users.env: "A=1" must be a table'),
        ("", '[env]\nA-B = "x"', "env.A-B: invalid variable name"),
        ("", "env = 5", "env: 5 must be a table"),
        # app
        ("", 'app = "Shop"', 'app: "Shop" is not a valid app name'),
        ("", 'app = "-shop"', "is not a valid app name"),
        ("", 'app = "' + "a" * 64 + '"', "is not a valid app name"),
        ("", 'app = "my--shop"', "must not contain '--' (preview hosts are <branch>--<app>)"),
        ("", "app = 5", "app: 5 must be a string"),
        # unknown keys
        ("memroy_mb = 64", "", "functions.users.memroy_mb: unknown key (did you mean memory_mb?)"),
        ("Routes = []", "", "functions.users.Routes: unknown key (did you mean routes?)"),
        ("zzz = 1", "", "functions.users.zzz: unknown key (allowed: entry, routes,"),
        ("", 'apps = "x"', "apps: unknown key (did you mean app?)"),
        ("", "[defaults]\ntimeout = 5", "defaults.timeout: unknown key (did you mean timeout_ms?)"),
        ("", '[defaults]\nentry = "x.py"', "defaults.entry: unknown key (allowed: memory_mb,"),
        ("", "[function.x]\nentry = 1", "function: unknown key (did you mean functions?)"),
        # structure
        ("", "defaults = 5", "defaults: 5 must be a table"),
    ],
)
def test_invalid_values(function: str, top: str, expected: str | None) -> None:
    if expected is None:  # the case where entry is missing
        text = '[functions.users]\nroutes = ["/x"]\n'
        expected = 'functions.users.entry: missing, e.g. entry = "functions/hello.py"'
    else:
        text = _doc(function, top)
    problems = _problems(text)
    assert any(expected in line for line in problems), problems


def test_timeout_line_is_exact_for_the_git_rejection() -> None:
    assert _problems(_doc("timeout_ms = 60000")) == [
        "edge.toml: functions.users.timeout_ms: 60000 > 30000 (the maximum; lower it)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('app = "x"\n', "edge.toml: functions: missing; add a [functions.<name>] table"),
        ("[functions]\n", "edge.toml: functions: empty"),
        ("functions = 5\n", "edge.toml: functions: 5 must be a table"),
        ("[functions]\nusers = 5\n", "edge.toml: functions.users: 5 must be a table"),
        (
            '[functions.Users]\nentry = "u.py"\nroutes = ["/"]\n',
            "edge.toml: functions.Users: invalid function name",
        ),
        (
            '[functions."a.b"]\nentry = "u.py"\nroutes = ["/"]\n',
            'edge.toml: functions."a.b": invalid function name',
        ),
        ('[functions.users]\nroutes = ["/"]\n', "functions.users.entry: missing"),
        (
            '[functions.users]\nentry = "u.py"\n',
            "functions.users.routes: missing; add at least one",
        ),
    ],
)
def test_structure(text: str, expected: str) -> None:
    assert any(expected in line for line in _problems(text))


def test_valid_function_names() -> None:
    text = '[functions.a-1]\nentry = "u.py"\nroutes = ["/"]\n'
    assert parse_manifest(text).functions[0].name == "a-1"


def test_duplicate_routes_across_functions_name_both() -> None:
    other = 'entry = "o.py"\nroutes = ["/x", "/API/users", "/api/users/"]\n'
    text = _doc() + "[functions.other]\n" + other
    problems = _problems(text)
    assert problems == [
        'edge.toml: functions.other.routes[2]: "/api/users/" is the same route as '
        '"/api/users" (functions.users.routes[0])'
    ]


def test_same_path_with_different_methods_is_fine() -> None:
    text = _doc('routes = ["GET /x", "POST /x", "/x"]')
    assert len(parse_manifest(text).function("users").routes) == 3


def test_all_problems_are_collected() -> None:
    text = _doc(
        'routes = ["x"]\ntimeout_ms = 60000\nmemory_mb = "1"\nmemroy = 1',
        'app = "A"\n[env]\n"9" = 1',
    )
    assert len(_problems(text)) == 7


def test_toml_syntax_error_names_line_and_column() -> None:
    (line,) = _problems('app = "shop"\n[functions.users]\nentry = \n')
    assert line.startswith("edge.toml: invalid TOML: ")
    assert "line 3, column" in line


def test_filename_is_configurable() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest("x", filename="sample-app/edge.toml")
    assert info.value.problems[0].startswith("sample-app/edge.toml: ")


def test_operator_memory_cap() -> None:
    assert any(
        "128 > 64 (the operator's cap; lower it)" in line
        for line in _problems(_doc("memory_mb = 128"), max_memory_mb=64)
    )
    assert parse_manifest(_doc(), max_memory_mb=64).function("users").memory_mb == 64
    assert parse_manifest(_doc("memory_mb = 1000"), max_memory_mb=1024).functions


def test_dns_labels() -> None:
    assert is_label("a") and is_label("a-b-1") and is_label("0")
    assert not any(is_label(x) for x in ("", "A", "a_b", "-a", "a-", "a.b", "a" * 64))
    assert app_name_problem("shop") is None
    assert app_name_problem("feature--shop") is not None


# -- sources ---------------------------------------------------------------


def _write_app(root: Path, manifest: str = FULL) -> None:
    (root / "functions").mkdir()
    (root / "js").mkdir()
    (root / "edge.toml").write_text(manifest)
    (root / "functions" / "users.py").write_text("def handle(request):\n    return {}\n")
    (root / "js" / "hello.mjs").write_text("export default { fetch() {} }\n")


def test_load_manifest_from_a_folder(tmp_path: Path) -> None:
    _write_app(tmp_path)
    assert load_manifest(DirSource(tmp_path)) == parse_manifest(FULL)


def test_missing_edge_toml(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"add an edge\.toml at the repo root"):
        load_manifest(DirSource(tmp_path))


def test_edge_toml_must_be_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real.toml").write_text(FULL)
    (tmp_path / "edge.toml").symlink_to("real.toml")
    with pytest.raises(ManifestError, match=r"edge\.toml: is a symlink"):
        load_manifest(DirSource(tmp_path))


def test_edge_toml_must_be_utf8(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_bytes(b'app = "\xff"\n')
    with pytest.raises(ManifestError, match="not valid UTF-8"):
        load_manifest(DirSource(tmp_path))


def test_missing_entry_file_and_other_problems_together(tmp_path: Path) -> None:
    _write_app(tmp_path, FULL.replace("timeout_ms = 5000", "timeout_ms = 60000"))
    (tmp_path / "js" / "hello.mjs").unlink()
    with pytest.raises(ManifestError) as info:
        load_manifest(DirSource(tmp_path))
    assert info.value.problems == [
        "edge.toml: functions.users.timeout_ms: 60000 > 30000 (the maximum; lower it)",
        "edge.toml: functions.hello.entry: js/hello.mjs not found in the repo "
        "(commit it or fix the path)",
    ]


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (
            lambda root: (
                (root / "functions" / "users.py").unlink(),
                (root / "functions" / "users.py").symlink_to("/etc/passwd"),
            ),
            "functions/users.py is a symlink",
        ),
        (
            lambda root: (
                (root / "functions" / "users.py").rename(root / "u.py"),
                (root / "functions" / "users.py").symlink_to("../u.py"),
            ),
            "functions/users.py is a symlink",
        ),
        (
            lambda root: (
                (root / "functions").rename(root / "f"),
                (root / "functions").symlink_to("f"),
            ),
            "functions is a symlink",
        ),
        (
            lambda root: (
                (root / "functions" / "users.py").unlink(),
                (root / "functions" / "users.py").mkdir(),
            ),
            "functions/users.py is not a regular file",
        ),
        (
            lambda root: (
                (root / "functions" / "users.py").rename(root / "u.py"),
                (root / "functions").rmdir(),
                (root / "u.py").rename(root / "functions"),
            ),
            "functions is not a folder",
        ),
    ],
)
def test_entry_must_be_a_regular_file_inside_the_folder(
    tmp_path: Path, arrange: Any, expected: str
) -> None:
    _write_app(tmp_path)
    arrange(tmp_path)
    with pytest.raises(ManifestError) as info:
        load_manifest(DirSource(tmp_path))
    assert info.value.problems == [
        f"edge.toml: functions.users.entry: {expected}"
        + (" (entry files must be regular files in the repo)" if "symlink" in expected else "")
    ]


def test_dir_source_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("hi")
    (root / "link").symlink_to(tmp_path / "outside")
    (root / "file-link").symlink_to("a.txt")
    source = DirSource(root)
    assert (source.kind("a.txt"), source.read("a.txt")) == ("file", b"hi")
    assert (source.kind("link"), source.kind("link/secret"), source.read("link/secret")) == (
        "symlink",
        "symlink",
        None,
    )
    assert (source.kind("file-link"), source.read("file-link")) == ("symlink", None)
    for bad in ("../outside/secret", "/etc/passwd", "", "a.txt/", "./a.txt", "nope"):
        assert source.kind(bad) is None and source.read(bad) is None
    assert source.kind("a.txt/x") is None


def _git_tree(tmp_path: Path, manifest: str = FULL) -> tuple[Repo, ObjectID]:
    """A real repository with a commit whose tree holds the app, a symlink and a submodule."""
    repo = Repo.init(str(tmp_path), mkdir=False)
    store = repo.object_store

    def add(obj: Any) -> ObjectID:
        store.add_object(obj)
        return ObjectID(obj.id)

    functions, js, root = Tree(), Tree(), Tree()
    functions.add(b"users.py", 0o100644, add(Blob.from_string(b"def handle(r):\n    return 1\n")))
    functions.add(b"link.py", 0o120000, add(Blob.from_string(b"users.py")))
    js.add(b"hello.mjs", 0o100755, add(Blob.from_string(b"export default {}\n")))
    root.add(b"edge.toml", 0o100644, add(Blob.from_string(manifest.encode())))
    root.add(b"functions", 0o040000, add(functions))
    root.add(b"js", 0o040000, add(js))
    root.add(b"dirlink", 0o120000, add(Blob.from_string(b"functions")))
    root.add(b"sub", 0o160000, ObjectID(b"1" * 40))
    commit = Commit()
    commit.tree = add(root)
    commit.author = commit.committer = b"Test <t@example.com>"
    commit.author_time = commit.commit_time = 1_700_000_000
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"app\n"
    repo.refs[Ref(b"refs/heads/main")] = add(commit)
    stored = repo[repo.refs[Ref(b"refs/heads/main")]]
    assert isinstance(stored, Commit)
    return repo, stored.tree


def test_git_tree_source(tmp_path: Path) -> None:
    repo, tree = _git_tree(tmp_path)
    source = GitTreeSource(repo.object_store, tree)
    assert load_manifest(source) == parse_manifest(FULL)
    assert source.read("functions/users.py") == b"def handle(r):\n    return 1\n"
    assert source.kind("functions") == "dir" and source.read("functions") is None
    assert source.kind("functions/link.py") == "symlink"
    assert source.read("functions/link.py") is None
    assert source.kind("dirlink") == "symlink"
    assert source.kind("dirlink/users.py") == "symlink"
    assert source.kind("sub") is None and source.kind("sub/x") is None
    assert source.kind("js/hello.mjs") == "file"
    for bad in ("nope", "../x", "/edge.toml", "edge.toml/x", "functions//users.py"):
        assert source.kind(bad) is None and source.read(bad) is None
    assert GitTreeSource(repo.object_store, ObjectID(b"2" * 40)).kind("edge.toml") is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("functions/link.py", "functions/link.py is a symlink"),
        ("dirlink/users.py", "dirlink is a symlink"),
        ("sub/x.py", "sub not found in the repo"),
        ("functions/nope.py", "functions/nope.py not found in the repo"),
    ],
)
def test_git_tree_entry_rules(tmp_path: Path, entry: str, expected: str) -> None:
    repo, tree = _git_tree(tmp_path, _doc(f'entry = "{entry}"'))
    with pytest.raises(ManifestError) as info:
        load_manifest(GitTreeSource(repo.object_store, tree))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"edge.toml: functions.users.entry: {expected}")


# -- properties ------------------------------------------------------------


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _toml_value(value: object) -> str:
    """A tiny TOML writer: every value inline, every key quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{_toml_string(key)} = {_toml_value(value)}\n" for key, value in doc.items())


_KNOWN_KEYS = [
    "app",
    "env",
    "defaults",
    "functions",
    "entry",
    "routes",
    "memory_mb",
    "timeout_ms",
    "regions",
    "min_warm",
    "max_instances",
    "users",
    "API",
]
_KEYS = st.one_of(st.sampled_from(_KNOWN_KEYS), st.text(max_size=8))
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-2, max_value=70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["/", "/a/:id", "GET /x/*", "f.py", "f.js:x", "../f.py", "us-east", "shop"]),
    st.dates(),
    st.datetimes(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=4)
    ),
    max_leaves=20,
)
_FUNCTION = st.dictionaries(st.sampled_from([*_KNOWN_KEYS[4:], "env", "x"]), _VALUES, max_size=6)
_DOCUMENTS = st.one_of(
    st.dictionaries(_KEYS, _VALUES, max_size=5),
    st.fixed_dictionaries(
        {"functions": st.dictionaries(_KEYS, _FUNCTION, max_size=3)},
        optional={"app": _VALUES, "env": _VALUES, "defaults": _VALUES},
    ),
)


@settings(max_examples=200, deadline=None)
@given(_DOCUMENTS)
def test_any_toml_document_gives_a_manifest_or_a_manifest_error(doc: dict[str, Any]) -> None:
    text = _toml_document(doc)
    assert tomllib.loads(text) is not None  # the writer itself is sound
    try:
        manifest = parse_manifest(text)
    except ManifestError as exc:
        assert exc.problems
        assert all(line.startswith("edge.toml: ") and "\n" not in line for line in exc.problems)
    else:
        assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_gives_a_manifest_or_a_manifest_error(text: str) -> None:
    try:
        parse_manifest(text)
    except ManifestError as exc:
        assert exc.problems


def test_kind_declares_a_wsgi_or_asgi_entry() -> None:
    app = '[functions.web]\nentry = "app.py:app"\nroutes = ["/*"]\nkind = "asgi"\n'
    spec = parse_manifest(app).function("web")
    assert spec.kind == "asgi"
    assert FunctionSpec.from_json(json.loads(json.dumps(spec.to_json()))).kind == "asgi"
    assert parse_manifest(app.replace('kind = "asgi"\n', "")).function("web").kind == ""
    assert _problems(app.replace('"asgi"', '"wsgl"')) == [
        'edge.toml: functions.web.kind: "wsgl" is not a kind (handler: a function of the '
        "request; wsgi: a WSGI app such as Flask; asgi: an ASGI app such as FastAPI); "
        "did you mean 'wsgi'?"
    ]
    js = '[functions.web]\nentry = "app.js"\nroutes = ["/*"]\nkind = "asgi"\n'
    assert _problems(js) == [
        "edge.toml: functions.web.kind: only Python entries take a kind (a JS entry is a module)"
    ]
