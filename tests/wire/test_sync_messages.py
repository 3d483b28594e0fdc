"""``sync`` and ``synced``: what the codec accepts of a sync request and its answer."""

from __future__ import annotations

import pytest

from codebolt_topo.errors import ProtocolError
from codebolt_topo.wire.codec import decode, encode


def test_a_sync_request_and_its_answer_decode() -> None:
    asked = decode(encode({"t": "sync", "id": "s1", "peer": "b", "direction": "pull"}))
    assert (asked["peer"], asked["direction"]) == ("b", "pull")
    answer = {
        "t": "synced",
        "id": "s1",
        "node": "a",
        "peer": "b",
        "direction": "pull",
        "bytes": 0,
        "seconds": 0.25,
        "report": None,
    }
    assert decode(encode(answer)) == answer


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"peer": "b", "direction": "both"}, "push or pull"),
        ({"peer": "", "direction": "push"}, "node name"),
        ({"peer": "b\0", "direction": "push"}, "node name"),
        ({"peer": "b"}, "missing field 'direction'"),
        ({"peer": "b", "direction": "push", "id": "x" * 513}, "longer than"),
    ],
)
def test_a_malformed_sync_is_refused_at_decode(fields: dict[str, str], why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(encode({"t": "sync", "id": "s1", **fields}))
