"""Issue 2: the wire protocol is documented in docs/protocol.md, all of it.

The codec's own tables are the truth; this fails when a message type, one of its fields, or an
error code is added to them and not to the document.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codebolt_topo.node import protocol

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MESSAGES = sorted(protocol._SCHEMA)


def _row(kind: str) -> str:
    """The table row (or rows) of the document that describe message ``kind``."""
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines()
            if re.match(rf"\|\s*`{re.escape(kind)}`\s*\|", line)]
    assert rows, f"docs/protocol.md has no table row for the {kind!r} message"
    return "\n".join(rows)


@pytest.mark.parametrize("kind", MESSAGES)
def test_every_message_and_field_is_documented(kind: str) -> None:
    row = _row(kind)
    for field in protocol._SCHEMA[kind]:
        assert f"`{field}`" in row, f"{kind!r}: field {field!r} is not in its row"


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = sorted(code for code in protocol.ERROR_CODES if f"`{code}`" not in text)
    assert missing == []


def test_the_binary_frame_header_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"{protocol.HEADER_SIZE}" in text
    assert protocol.SUBPROTOCOL in text
