"""The children API's requests and replies (children/api.py), without sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebolt_topo.children.api import (
    ChildRequest,
    child_file,
    child_name,
    encode_reply,
    error_reply,
    parse_request,
)
from codebolt_topo.errors import ConfigError


def test_requests_parse_into_checked_fields() -> None:
    assert parse_request('{"op": "list"}') == ChildRequest("list")
    assert parse_request('{"op": "apply", "topology": "name: x"}') == ChildRequest(
        "apply", topology="name: x"
    )
    assert parse_request('{"op": "destroy", "name": "x"}') == ChildRequest("destroy", name="x")
    assert parse_request(
        json.dumps({"op": "exec", "name": "x", "node": "a", "argv": ["true"], "timeout": 5})
    ) == ChildRequest("exec", name="x", node="a", argv=["true"], timeout=5.0)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("nope", "not JSON"),
        ("[]", "a JSON object"),
        ('{"op": "rm"}', "op must be one of apply, exec, destroy, list"),
        ('{"op": "apply"}', "apply needs 'topology'"),
        ('{"op": "destroy", "name": "../x"}', "destroy needs 'name'"),
        ('{"op": "exec", "name": "x", "argv": ["true"]}', "exec needs 'node'"),
        ('{"op": "exec", "name": "x", "node": "a"}', "exactly one of 'argv'"),
        ('{"op": "exec", "name": "x", "node": "a", "argv": []}', "non-empty list"),
        ('{"op": "exec", "name": "x", "node": "a", "shell": "true", "timeout": -1}', "'timeout'"),
    ],
)
def test_bad_requests_say_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(ConfigError, match="children API: ") as info:
        parse_request(line)
    assert says in str(info.value)


def test_a_child_is_named_by_its_topology_and_lives_under_the_parent() -> None:
    assert child_name("version: 1\nname: scratch\nnodes: {a: {}}\n") == "scratch"
    with pytest.raises(ConfigError, match="valid 'name:'"):
        child_name("name: ../../etc\n")
    assert child_file(Path("/s"), "scratch") == Path("/s/children/scratch/topology.yaml")


def test_replies_are_json_lines() -> None:
    assert json.loads(encode_reply(name="x")) == {"ok": True, "name": "x"}
    assert json.loads(error_reply("no")) == {"ok": False, "error": "no"}
    assert encode_reply().endswith(b"\n")
