"""The broker socket's format (cli/broker_wire.py): every request a caller can make arrives as
it was made, whatever its arguments hold, and anything else is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codebolt_topo.cli import broker_wire
from codebolt_topo.cli.broker_client import parse_broker_args

#: What an argument can be: any text without NUL, including what a non-UTF-8 argv byte becomes.
WORDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
) | st.binary().filter(lambda b: b"\0" not in b).map(os.fsdecode)


@given(kind=st.sampled_from(["exec", "status", "stop"]), words=st.lists(WORDS, max_size=20))
def test_a_frame_round_trips(kind: str, words: list[str]) -> None:
    data = broker_wire.frame(kind, *words)
    assert broker_wire.frame_length(data[: broker_wire.HEADER]) == len(data)
    assert broker_wire.unframe(data) == (kind, words)


@given(
    positionals=st.lists(WORDS, max_size=8),
    all_nodes=st.booleans(),
    shell=st.booleans(),
    stdin=st.booleans(),
    from_node=st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    timeout=st.none() | st.floats(min_value=0.001, max_value=1e6),
    cwd=WORDS,
)
def test_an_exec_request_round_trips(
    positionals: list[str],
    all_nodes: bool,
    shell: bool,
    stdin: bool,
    from_node: str | None,
    timeout: float | None,
    cwd: str,
) -> None:
    request = {
        "file": "/work/topology.yaml",
        "positionals": positionals,
        "all_nodes": all_nodes,
        "shell": shell,
        "stdin": stdin,
        "from_node": from_node,
        "timeout": timeout,
    }
    data = broker_wire.frame("exec", *broker_wire.exec_fields(request, cwd))
    kind, words = broker_wire.unframe(data)
    assert kind == "exec"
    assert broker_wire.exec_request(words) == {**request, "cwd": cwd}


def test_what_a_caller_parses_is_what_the_broker_reads() -> None:
    args = ["t.yaml", "a,b", "--from", "a", "--timeout=2.5", "--shell", "--", "echo", "x\ny", ""]
    request = parse_broker_args(args)
    assert request is not None
    _, words = broker_wire.unframe(
        broker_wire.frame("exec", *broker_wire.exec_fields(request, "/"))
    )
    read = broker_wire.exec_request(words)
    assert read["positionals"] == ["t.yaml", "a,b", "--", "echo", "x\ny", ""]
    assert (read["from_node"], read["timeout"], read["shell"], read["stdin"]) == (
        "a",
        2.5,
        True,
        False,
    )
    assert read["file"] == os.path.abspath("t.yaml")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0\0\0",
        (10).to_bytes(4, "big") + b"codebolt-b",  # shorter than it says
        (3).to_bytes(4, "big") + b"abcdef",  # longer
        (len(b"codebolt-broker/1\0exec")).to_bytes(4, "big") + b"codebolt-broker/1\0exec",
        b'{"exec": {}}\n',  # the JSON lines of version 1
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="request"):
        broker_wire.unframe(data)


def test_a_request_past_the_limit_is_refused_from_its_header() -> None:
    with pytest.raises(ValueError, match="at most"):
        broker_wire.frame("exec", "x" * broker_wire.MAX_REQUEST)
    header = (broker_wire.MAX_REQUEST + 1).to_bytes(4, "big")
    with pytest.raises(ValueError, match="at most"):
        broker_wire.frame_length(header)


@pytest.mark.parametrize("words", [[], ["f", "/", "x", "", ""], ["f", "/", "", "", "soon"]])
def test_a_malformed_exec_request_is_refused(words: list[str]) -> None:
    with pytest.raises(ValueError, match="malformed"):
        broker_wire.exec_request(words)


def test_exit_lines() -> None:
    assert broker_wire.parse_exit(broker_wire.exit_line(0)) == 0
    assert broker_wire.parse_exit(broker_wire.exit_line(124)) == 124
    assert broker_wire.parse_exit(broker_wire.exit_line(-9)) == -9
    assert broker_wire.parse_exit(b"stopping") is None
    assert broker_wire.parse_exit(b"exit x") is None


def test_a_command_past_the_brokers_limit_takes_the_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An argument list larger than a broker request may be is not sent there (and not an
    error of the fast path): the full path runs it."""
    from codebolt_topo.cli.broker_client import exec_via_broker

    (tmp_path / "topology.yaml").write_text("name: t\nnodes: {a: {}}\n")
    monkeypatch.chdir(tmp_path)
    huge = "x" * (broker_wire.MAX_REQUEST + 1)
    assert exec_via_broker(["a", "--", "echo", huge]) is None
