"""Route patterns: parsing rules and the router's precedence."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.routes import RouteError, RoutePattern, Router, parse_route


@pytest.mark.parametrize(
    ("text", "method", "segments"),
    [
        ("/", None, ()),
        ("/api/users", None, ("api", "users")),
        ("/api/users/", None, ("api", "users")),
        ("/users/:id", None, ("users", ":id")),
        ("/api/*", None, ("api", "*")),
        ("/*", None, ("*",)),
        ("GET /x", "GET", ("x",)),
        ("get /x", "GET", ("x",)),
        ("  GET\t /x ", "GET", ("x",)),
        ("delete /x/:a/:b", "DELETE", ("x", ":a", ":b")),
        ("/a-b.c_d~e", None, ("a-b.c_d~e",)),
        ("/caf%c3%a9", None, ("caf%C3%A9",)),
        ("/%7Eme", None, ("~me",)),
        ("/:_x1", None, (":_x1",)),
    ],
)
def test_parse_route_valid(text: str, method: str | None, segments: tuple[str, ...]) -> None:
    pattern = parse_route(text)
    assert pattern == RoutePattern(text, method, segments)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty route"),
        ("   ", "empty route"),
        ("api/users", "must start with '/'"),
        ("GET", "must start with '/'"),
        ("FETCH /x", "unknown method"),
        ("GET /x extra", "too many spaces"),
        ("/a b", "cannot contain spaces"),
        ("/a//b", "empty segment"),
        ("/a/*/b", "'*' must be the last segment"),
        ("/a*", "a wildcard is a whole last segment"),
        ("/:", "must be an identifier"),
        ("/:1x", "must be an identifier"),
        ("/:a-b", "must be an identifier"),
        ("/a:b", "a param is a whole segment"),
        ("/x?y=1", "not query strings"),
        ("/x#top", "not fragments"),
        ("/100%", "'%' must start an escape"),
        ("/%zz", "'%' must start an escape"),
        ("/caf\u00e9", "not allowed in a segment"),
        ("/a\u2028", "not allowed in a segment"),
        ("/a\nb", "not allowed in a segment"),
        ("/a/../b", "'.' and '..' segments"),
        ("/%2E%2E", "'.' and '..' segments"),
        ("/:id/x/:id", "used twice"),
        ("/" + "a" * 2000, "longer than"),
    ],
)
def test_parse_route_invalid(text: str, reason: str) -> None:
    with pytest.raises(RouteError) as info:
        parse_route(text)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def _router(*texts: str) -> Router[str]:
    return Router((parse_route(text), text) for text in texts)


def _hit(router: Router[str], path: str, method: str = "GET") -> tuple[str, dict[str, str]] | None:
    return router.match(method, path)


@pytest.mark.parametrize(
    ("patterns", "path", "winner", "params"),
    [
        # static beats param beats wildcard
        (["/u/me", "/u/:id", "/u/*"], "/u/me", "/u/me", {}),
        (["/u/me", "/u/:id", "/u/*"], "/u/42", "/u/:id", {"id": "42"}),
        (["/u/me", "/u/:id", "/u/*"], "/u/42/posts", "/u/*", {"*": "42/posts"}),
        # the first difference decides, not the count of static segments
        (["/a/:x/c/d", "/:y/b/c/d"], "/a/b/c/d", "/a/:x/c/d", {"x": "b"}),
        (["/a/*", "/:x/b"], "/a/b", "/a/*", {"*": "b"}),
        # longer beats shorter when one is a prefix of the other
        (["/a/*", "/a/b/*"], "/a/b/c", "/a/b/*", {"*": "c"}),
        # backtracking: a static branch that dead-ends falls back to the param
        (["/a/b/c", "/a/:x/d"], "/a/b/d", "/a/:x/d", {"x": "b"}),
        (["/a/b/:c", "/a/*"], "/a/b", "/a/*", {"*": "b"}),
        # an empty wildcard tail: /api/* also matches /api, but /api itself wins there
        (["/api/*"], "/api", "/api/*", {"*": ""}),
        (["/api/*", "/api"], "/api", "/api", {}),
        (["/api/*", "/:x"], "/api", "/api/*", {"*": ""}),
        (["/*"], "/", "/*", {"*": ""}),
        (["/"], "/", "/", {}),
        # method-specific beats any-method at equal paths, never across paths
        (["/x", "GET /x"], "/x", "GET /x", {}),
        (["/u/me", "GET /u/:id"], "/u/me", "/u/me", {}),
        # trailing slash
        (["/a/"], "/a", "/a/", {}),
        (["/a"], "/a/", "/a", {}),
        (["/a/:id"], "/a/7/", "/a/:id", {"id": "7"}),
        # percent-decoding of params, canonical matching of static segments
        (["/u/:name"], "/u/J%C3%B6rg%20M", "/u/:name", {"name": "J\u00f6rg M"}),
        (["/f/*"], "/f/a%2Fb/c", "/f/*", {"*": "a/b/c"}),
        (["/~me"], "/%7eme", "/~me", {}),
        (["/caf%C3%A9"], "/caf%c3%a9", "/caf%C3%A9", {}),
        (["/caf%C3%A9"], "/caf\u00e9", "/caf%C3%A9", {}),
        (["/a%3Ab"], "/a:b", "/a%3Ab", {}),
        (["/:p"], "/100%", "/:p", {"p": "100%"}),
    ],
)
def test_precedence(patterns: list[str], path: str, winner: str, params: dict[str, str]) -> None:
    assert _hit(_router(*patterns), path) == (winner, params)
    assert _hit(_router(*reversed(patterns)), path) == (winner, params)


@pytest.mark.parametrize(
    ("patterns", "path"),
    [
        (["/u/:id"], "/u"),
        (["/u/:id"], "/u/1/2"),
        (["/u/:id"], "/u//"),
        (["/a/b"], "/a"),
        (["/a"], "/A"),
        (["/a"], "a"),
        ([], "/"),
    ],
)
def test_no_match(patterns: list[str], path: str) -> None:
    assert _hit(_router(*patterns), path) is None


def test_param_never_matches_an_empty_segment() -> None:
    router = _router("/a/:x/b", "/a/*")
    assert _hit(router, "/a//b") == ("/a/*", {"*": "/b"})


def test_empty_request_path_is_root() -> None:
    assert _hit(_router("/"), "") == ("/", {})


def test_get_route_also_matches_head() -> None:
    router = _router("GET /x")
    assert _hit(router, "/x", "HEAD") == ("GET /x", {})
    assert _hit(router, "/x", "POST") is None


def test_head_route_beats_get_route_for_head() -> None:
    router = _router("GET /x", "HEAD /x", "/x")
    assert _hit(router, "/x", "HEAD") == ("HEAD /x", {})
    assert _hit(router, "/x", "GET") == ("GET /x", {})
    assert _hit(router, "/x", "PUT") == ("/x", {})


def test_method_mismatch_falls_back_to_less_specific_pattern() -> None:
    router = _router("POST /u/me", "POST /u/:id", "GET /u/*")
    assert _hit(router, "/u/me", "GET") == ("GET /u/*", {"*": "me"})
    assert _hit(router, "/u/me", "POST") == ("POST /u/me", {})
    assert _hit(router, "/u/7", "POST") == ("POST /u/:id", {"id": "7"})
    assert _hit(router, "/u/7", "DELETE") is None


def test_param_names_are_per_pattern() -> None:
    router = _router("/u/:id/posts", "/u/:uid/likes/:n")
    assert _hit(router, "/u/1/posts") == ("/u/:id/posts", {"id": "1"})
    assert _hit(router, "/u/1/likes/2") == ("/u/:uid/likes/:n", {"uid": "1", "n": "2"})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/u/:id", "/u/:name"),
        ("/a", "/a/"),
        ("GET /a", "get /a"),
        ("/~x", "/%7Ex"),
        ("/a/*", "/a/*"),
    ],
)
def test_equal_patterns_are_an_error_naming_both(first: str, second: str) -> None:
    with pytest.raises(RouteError) as info:
        _router(first, second)
    assert first in str(info.value)
    assert second in str(info.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/a", "GET /a"),
        ("GET /a", "POST /a"),
        ("/a/:x", "/a/*"),
        ("/a", "/a/*"),
    ],
)
def test_different_patterns_coexist(first: str, second: str) -> None:
    router = _router(first, second)
    assert router.match("GET", "/a") is not None


def test_router_holds_any_target_type() -> None:
    router: Router[int] = Router([(parse_route("/n/:v"), 7)])
    assert router.match("GET", "/n/x") == (7, {"v": "x"})


def test_shape_ignores_param_names() -> None:
    assert parse_route("/u/:id").shape() == parse_route("/u/:name").shape()
    assert parse_route("/u/:id").param_names == ("id",)
    assert parse_route("/u/me").is_static
    assert not parse_route("/u/*").is_static


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_route_raises_only_route_error(text: str) -> None:
    try:
        pattern = parse_route(text)
    except RouteError as exc:
        assert "\n" not in str(exc)
    else:
        assert parse_route(pattern.text) == pattern


_SEGMENT = st.one_of(
    st.text("abcXYZ019-._~", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
    st.from_regex(r":[a-z_][a-z0-9_]{0,4}", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_SEGMENT, max_size=5),
    st.booleans(),
    st.sampled_from([None, "GET", "POST"]),
    st.text(max_size=30),
)
def test_a_pattern_matches_its_own_paths(
    segments: list[str], wildcard: bool, method: str | None, tail: str
) -> None:
    names = [s for s in segments if s.startswith(":")]
    if len(set(names)) != len(names):
        return
    text = "/" + "/".join(segments + (["*"] if wildcard else []))
    text = f"{method} {text}" if method else text
    concrete = ["v" + s[1:] if s.startswith(":") else s for s in segments]
    path = "/" + "/".join(concrete + ([quote(tail, safe="")] if wildcard else []))
    found = _hit(_router(text), path, method or "PATCH")
    assert found is not None
    assert found[1] == {
        **{s[1:]: "v" + s[1:] for s in names},
        **({"*": tail} if wildcard else {}),
    }


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["GET", "HEAD", "POST", "BREW"]))
def test_match_on_arbitrary_paths_never_raises(path: str, method: str) -> None:
    router = _router("/", "/a/:x", "/a/b/*", "GET /:y", "/c%2Fd")
    result = router.match(method, path)
    assert result is None or isinstance(result[1], dict)
