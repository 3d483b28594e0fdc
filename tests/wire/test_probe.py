"""``GET /info`` as bytes (``wire/probe.py``): the request a caller sends, and the reading of
every answer a node (or a node too old to know the path) can give."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.probe import INFO_PATH, info_request, read_info_answer


def _answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    """An answer laid out as websockets writes one (``ServerConnection.respond``)."""
    return (
        f"HTTP/1.1 {status}\r\nDate: Fri, 04 Dec 2026 20:00:00 GMT\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: {content_type}\r\n\r\n"
    ).encode() + body


def test_the_request_carries_the_token_and_asks_to_close() -> None:
    request = info_request("127.0.0.1:3100", "s3cret")
    assert request.startswith(f"GET {INFO_PATH} HTTP/1.1\r\n".encode())
    assert b"\r\nAuthorization: Bearer s3cret\r\n" in request
    assert b"\r\nConnection: close\r\n" in request
    assert request.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(("host", "token"), [("h", "a\r\nX-Evil: 1"), ("h\n", "t")])
def test_a_line_break_never_reaches_a_header(host: str, token: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        info_request(host, token)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_an_info_object_round_trips(info: dict[str, Any]) -> None:
    answer = read_info_answer(_answer("200 OK", json.dumps(info).encode() + b"\n"))
    assert (answer.status, answer.info, answer.predates) == (200, info, False)


@pytest.mark.parametrize(
    ("status", "body", "predates", "reason"),
    [
        ("401 Unauthorized", b"Missing or unknown token\n", False, "Missing or unknown token"),
        ("403 Forbidden", b"GET /info takes the admin token\n", False, "GET /info takes the admin"),
        ("426 Upgrade Required", b"Failed to open a WebSocket connection.\n", True, "Failed"),
        ("400 Bad Request", b"Failed to open a WebSocket connection: missing", True, "Failed"),
        ("500 Internal Server Error", b"", False, "Internal Server Error"),
    ],
)
def test_other_answers_keep_the_status_and_what_the_node_said(
    status: str, body: bytes, predates: bool, reason: str
) -> None:
    answer = read_info_answer(_answer(status, body, "text/plain; charset=utf-8"))
    assert answer.info is None
    assert answer.status == int(status.split()[0])
    assert answer.predates is predates
    assert answer.reason.startswith(reason)


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (b"", "incomplete HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "incomplete HTTP answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 2xx OK\r\n\r\n{}", "not an HTTP answer"),
        (_answer("200 OK", b"{truncated"), "not JSON"),
        (_answer("200 OK", b"[1, 2]"), "JSON list, not an object"),
    ],
)
def test_what_is_not_an_answer_is_a_protocol_error(raw: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        read_info_answer(raw)
