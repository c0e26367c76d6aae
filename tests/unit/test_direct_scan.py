"""Which requests the direct path leaves to gunicorn, from their headers alone.

gunicorn's C parser refuses a second Host or Content-Type and a Transfer-Encoding
that does not end with chunked; gunicorn's request object checks them again (a
backstop for a parser that lets them through). The direct path skips that object,
so it keeps the backstop: such a request goes to gunicorn, which answers 400.
"""

from __future__ import annotations

from types import SimpleNamespace

from edge.runtime.direct import DirectProtocol

TRUSTED = SimpleNamespace(
    _forwarded_trust=(["127.0.0.1"], True), _secure_names=frozenset({b"x-forwarded-proto"})
)
UNKNOWN = SimpleNamespace(_forwarded_trust=None, _secure_names=None)


def scan(headers: list[tuple[bytes, bytes]], conn: SimpleNamespace = TRUSTED) -> object:
    return DirectProtocol._scan(conn, headers)  # type: ignore[arg-type]


def test_a_plain_request_skips_the_header_policy() -> None:
    assert scan([(b"host", b"a.example"), (b"accept", b"*/*")]) == (b"a.example", False)


def test_headers_the_policy_acts_on_send_the_request_through_it() -> None:
    assert scan([(b"host", b"a"), (b"x_test", b"1")]) == (b"a", True)
    assert scan([(b"host", b"a"), (b"x-forwarded-proto", b"https")]) == (b"a", True)
    assert scan([(b"host", b"a")], UNKNOWN) == (b"a", True)  # trust not worked out yet


def test_requests_gunicorn_refuses_or_answers_itself_are_left_to_it() -> None:
    for headers in (
        [],
        [(b"accept", b"*/*")],
        [(b"host", b"a"), (b"host", b"b")],
        [(b"host", b"a"), (b"content-type", b"x/y"), (b"content-type", b"x/z")],
        [(b"host", b"a"), (b"transfer-encoding", b"gzip")],
        [(b"host", b"a"), (b"expect", b"100-continue")],
        [(b"host", b"a"), (b"upgrade", b"websocket")],
    ):
        assert scan(headers) is None, headers
