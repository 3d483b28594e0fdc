"""Owners of requests (node/security/principals.py): who may claim what, and who may reach a
held job."""

from __future__ import annotations

from typing import Any

from codebolt_topo.node.security.principals import claim_owner, job_refusal, upstream_sets

HUB = [("dev-a", "hub"), ("dev-b", "hub"), ("hub", "w1"), ("hub", "w2")]
UPSTREAM = upstream_sets(HUB)


def _claim(
    principal: str, node: str, owner: str | None = None, *, admin: bool = False
) -> tuple[str, Any]:
    message: dict[str, Any] = {"t": "exec", "id": "r1"}
    if owner is not None:
        message["owner"] = owner
    problem = claim_owner(message, principal, node, admin=admin, upstream=UPSTREAM[node])
    return problem, message.get("owner")


def test_the_entry_stamps_itself_and_its_admin_may_name_any_owner() -> None:
    assert _claim("admin", "dev-a", admin=True) == ("", "dev-a")
    assert _claim("admin", "dev-a", "someone", admin=True) == ("", "someone")


def test_a_peer_acts_for_itself_by_default_and_when_it_says_so() -> None:
    assert _claim("dev-a", "hub") == ("", "dev-a")
    assert _claim("dev-a", "hub", "dev-a") == ("", "dev-a")


def test_a_peer_cannot_claim_another_peer() -> None:
    problem, _ = _claim("dev-b", "hub", "dev-a")
    assert problem == (
        "node 'hub': 'dev-b' may not act for 'dev-a' (only for itself or for nodes upstream of it)"
    )


def test_a_hop_relays_for_the_nodes_upstream_of_it_only() -> None:
    assert _claim("hub", "w1", "dev-a") == ("", "dev-a")
    assert _claim("hub", "w1", "dev-b") == ("", "dev-b")
    assert _claim("hub", "w1", "w2")[0] != ""


def test_a_non_string_owner_is_refused() -> None:
    message: dict[str, Any] = {"owner": ["dev-a"]}
    assert "must be a string" in claim_owner(message, "dev-a", "hub", admin=False, upstream={})


def test_each_node_gets_the_upstream_sets_it_checks_and_no_more() -> None:
    assert UPSTREAM == {
        "dev-a": {},
        "dev-b": {},
        "hub": {"hub": ["dev-a", "dev-b"]},
        "w1": {"hub": ["dev-a", "dev-b"], "w1": ["dev-a", "dev-b", "hub"]},
        "w2": {"hub": ["dev-a", "dev-b"], "w2": ["dev-a", "dev-b", "hub"]},
    }
    grown = upstream_sets([*HUB, ("w1", "w3")])
    assert {n: grown[n] for n in UPSTREAM} == UPSTREAM  # a new leaf changes no one else
    assert upstream_sets([("a", "b"), ("b", "a")])["a"] == {"a": ["b"], "b": ["a"]}


def test_a_job_is_reached_by_its_owner_and_by_nodes_downstream_of_it() -> None:
    chain = upstream_sets([("a", "b"), ("b", "c")])["c"]
    assert job_refusal("c", "r1", "a", "a", chain) == ""
    assert job_refusal("c", "r1", "a", "b", chain) == ""  # a's work passes through b anyway
    assert job_refusal("c", "r1", "b", "a", chain) != ""
    hub = UPSTREAM["w1"]
    assert job_refusal("w1", "r1", None, "dev-b", hub) == ""
    assert job_refusal("w1", "r1", "dev-a", "dev-b", hub) == (
        "node 'w1': request 'r1' belongs to another owner"
    )
