"""What validate refuses for joined nodes, at the field to change, and the URLs a joined
machine is given (pure: tests/e2e/test_joined_nodes.py joins for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.model.state import NodeState
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.joined.provider import JoinedProvider
from codebolt_topo.wire.joining import JOIN_HOST

pytestmark = pytest.mark.core


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as raised:
        validate_file(path)
    return [f"{issue.field}: {issue.message}" for issue in raised.value.issues]


@pytest.mark.parametrize(
    ("nodes", "edges", "words"),
    [
        ("hub: {}", "[bob -> hub]", "nodes.hub.host: node 'hub' listens on 127.0.0.1"),
        (
            "hub: {host: 0.0.0.0}\n  amy: {provider: joined}",
            "[bob -> amy, amy -> hub]",
            "both ends are joined nodes",
        ),
        (
            "hub: {host: 0.0.0.0}",
            "[{from: hub, to: bob, dial: sender}]",
            "dial: sender asks 'hub' to dial joined node 'bob'",
        ),
        ("hub: {host: 0.0.0.0}", "[]", "nodes.bob.provider: joined node 'bob' has no edge"),
        ("hub: {provider: docker}", "[bob -> hub]", "reaches only nodes that listen"),
    ],
)
def test_edges_a_joined_node_cannot_open_are_refused(
    tmp_path: Path, nodes: str, edges: str, words: str
) -> None:
    text = f"name: t\nnodes:\n  bob: {{provider: joined}}\n  {nodes}\nedges: {edges}\n"
    issues = _issues(tmp_path, text)
    assert any(words in issue for issue in issues), issues


def test_a_joined_node_has_no_workspace_here_and_no_replicas(tmp_path: Path) -> None:
    text = (
        "name: t\nnodes:\n  hub: {host: 0.0.0.0}\n"
        "  bob: {provider: joined, workspace: ./w}\nedges: [bob -> hub]\n"
    )
    assert any("on its own machine" in issue for issue in _issues(tmp_path, text))


def test_a_valid_team_topology_passes(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        "name: t\nnodes:\n  hub: {host: 0.0.0.0}\n  worker: {}\n  bob: {provider: joined}\n"
        "edges: [bob -> hub, hub -> bob, hub -> worker]\n"
    )
    assert validate_file(path).topology.nodes["bob"].provider == "joined"


def _local(host: str, bound: str, port: int = 4100, ca: str | None = "CA") -> NodeState:
    return NodeState(
        name="hub",
        provider="local",
        host=host,
        port=port,
        admin_token="t",
        launch={"host": bound},
        launch_hash="h",
        pinned_ca=ca,
    )


def test_the_urls_a_joined_machine_dials() -> None:
    url_of = JoinedProvider.url_of
    assert url_of(_local("127.0.0.1", "0.0.0.0")) == f"wss://{JOIN_HOST}:4100"
    assert url_of(_local("10.1.2.3", "10.1.2.3")) == "wss://10.1.2.3:4100"
    assert url_of(_local("127.0.0.1", "127.0.0.1", ca=None)) is None  # loopback only
    docker = _local("127.0.0.1", "0.0.0.0").model_copy(update={"provider": "docker"})
    assert url_of(docker) is None
