"""requirements.txt rules and environment digests (pure)."""

from __future__ import annotations

import pytest

from edge.packages import check_requirements, env_digest, interpreter_tag, uv_message


@pytest.mark.parametrize(
    "line",
    [
        "flask==3.1.0",
        "Flask[async]>=3 ; python_version >= '3.11'",
        "numpy==2.4.6 --hash=sha256:" + "0" * 64,
        "requests  # an HTTP client",
        "# a comment",
        "",
    ],
)
def test_names_versions_markers_and_hashes_are_allowed(line: str) -> None:
    assert check_requirements(line.encode()) == []


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("--index-url http://evil.example/simple", "options are not allowed here"),
        ("-r /etc/passwd", "options are not allowed here"),
        ("-e .", "options are not allowed here"),
        ("flask --extra-index-url http://x", "options are not allowed here"),
        ("./vendor/pkg", "paths and URLs are not allowed"),
        ("/opt/wheels/x-1.0-py3-none-any.whl", "paths and URLs are not allowed"),
        ("pkg @ file:///etc/shadow", "paths and URLs are not allowed"),
        ("pkg @ http://169.254.169.254/latest/x.whl", "paths and URLs are not allowed"),
        ("git+https://github.com/a/b", "paths and URLs are not allowed"),
    ],
)
def test_options_paths_and_urls_are_refused(line: str, rule: str) -> None:
    problems = check_requirements(f"flask\n{line}\n".encode())
    assert len(problems) == 1
    assert problems[0].startswith("requirements.txt:2: ") and rule in problems[0]


def test_the_digest_covers_the_bytes_and_the_interpreter() -> None:
    assert env_digest(b"flask\n") == env_digest(b"flask\n")
    assert env_digest(b"flask\n") != env_digest(b"flask \n")
    assert interpreter_tag().startswith("cpython-3.")


def test_uv_message_is_one_line_naming_the_package() -> None:
    output = [
        "Using CPython 3.11.7 interpreter at: /x/python",
        "error: No solution found when resolving dependencies",
        "  cause: Because edgebar-x was not found in the provided package locations and "
        "you require edgebar-x==9.9.9, we can conclude that your requirements are "
        "unsatisfiable.",
    ]
    message = uv_message(output)
    assert "\n" not in message
    assert message.startswith("No solution found when resolving dependencies: Because edgebar-x")
