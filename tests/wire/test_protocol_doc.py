"""The wire protocol is documented in docs/protocol.md and typed in wire/messages.py, all of it.

The codec's own tables are the truth; this fails when a message type, one of its fields, or an
error code is added to them and not to the document, or not to the message's TypedDict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_type_hints

import pytest

from codebolt_topo.wire import codec, frames, handshake, messages

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MESSAGES = sorted(codec._SCHEMA)


def _row(kind: str) -> str:
    """The table row (or rows) of the document that describe message ``kind``."""
    rows = [
        line
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if re.match(rf"\|\s*`{re.escape(kind)}`\s*\|", line)
    ]
    assert rows, f"docs/protocol.md has no table row for the {kind!r} message"
    return "\n".join(rows)


@pytest.mark.parametrize("kind", MESSAGES)
def test_every_message_and_field_is_documented(kind: str) -> None:
    row = _row(kind)
    for field in codec._SCHEMA[kind]:
        assert f"`{field}`" in row, f"{kind!r}: field {field!r} is not in its row"


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(code for code in messages.ERROR_CODES if f"`{code}`" not in text)
    assert missing == []


def test_the_binary_frame_header_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"{frames.HEADER_SIZE}" in text
    assert handshake.SUBPROTOCOL in text


@pytest.mark.parametrize("kind", MESSAGES)
def test_every_message_is_typed_with_the_codecs_fields(kind: str) -> None:
    typed = messages.MESSAGE_TYPES[kind]
    fields = set(get_type_hints(typed)) - {"t"}
    assert fields == set(codec._SCHEMA[kind]), f"{kind!r}: TypedDict and codec disagree"
    required = {name for name, (_, needed) in codec._SCHEMA[kind].items() if needed}
    assert set(typed.__required_keys__) - {"t"} == required, f"{kind!r}: required fields differ"


def test_every_handshake_header_is_documented() -> None:
    text = DOC.read_text()
    for header in (
        handshake.CLOCK_HEADER,
        handshake.DIAL_HEADER,
        handshake.NONCE_HEADER,
        handshake.PROOF_HEADER,
    ):
        assert f"`{header}`" in text, header
