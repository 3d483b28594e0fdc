"""Container settings derived from node specs, checked without an engine (pure and fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from codebolt_topo.errors import ConfigError
from codebolt_topo.model.nodes import node_model
from codebolt_topo.model.state import NodeState
from codebolt_topo.providers.base import NodeLaunch, ProviderContext
from codebolt_topo.providers.docker.names import Names
from codebolt_topo.providers.docker.options import container_options
from codebolt_topo.providers.docker.provider import DockerProvider
from codebolt_topo.providers.docker.sandbox import parse_volume
from codebolt_topo.providers.docker.settings import ContainerSettings
from codebolt_topo.wire.config import LaunchConfig

NodeSpec = node_model()  # with the installed providers' settings
CONTEXT = ProviderContext(
    topology="t", lineage="0123456789abcdef", runtime_dir=Path("/r"), base_dir=Path("/base")
)


def _options(**spec: object) -> dict[str, object]:
    node = NodeSpec.model_validate({"provider": "docker", **spec})
    config = LaunchConfig(
        topology="t", node="n", admin_token_digest="0" * 64, workspace="/host/ws", state_dir="/r/n"
    )
    launch = NodeLaunch(name="n", spec=node, config=config)
    return container_options(launch, Names(CONTEXT), "img", Path("/base"), {}, [])


def test_plain_node_publishes_on_loopback_and_keeps_a_workspace_volume() -> None:
    options = _options()
    assert options["ports"] == {"3100/tcp": ("127.0.0.1", None)}
    assert options["volumes"] == {
        "codebolt-t-01234567-n-workspace": {"bind": "/workspace", "mode": "rw"}
    }
    assert options["extra_hosts"] == {"host.docker.internal": "host-gateway"}
    assert "cap_drop" not in options
    labels = options["labels"]
    assert isinstance(labels, dict)
    assert labels["org.codebolt.topology"] == "t"
    assert labels["org.codebolt.node"] == "n"
    assert labels["org.codebolt.lineage"] == "0123456789abcdef"


def test_sandbox_is_hardened_with_default_limits() -> None:
    options = _options(sandbox=True, resources={"memory": "64m"})
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges:true"]
    assert options["read_only"] is True
    assert options["privileged"] is False
    assert options["pids_limit"] == 256
    assert options["mem_limit"] == options["memswap_limit"] == "64m"
    assert options["nano_cpus"] == 1_000_000_000
    assert "ports" not in options
    assert "extra_hosts" not in options
    tmpfs = options["tmpfs"]
    assert isinstance(tmpfs, dict)
    assert "size=" in tmpfs["/workspace"]
    assert options["volumes"] == {}


def test_sandbox_refuses_the_docker_socket() -> None:
    with pytest.raises(ConfigError, match="engine socket"):
        _options(sandbox=True, volumes=["/var/run/docker.sock:/var/run/docker.sock"])


def test_volumes_bind_host_paths_relative_to_the_topology() -> None:
    mount = parse_volume("./data:/data:ro", Path("/base"))
    assert (mount.source, mount.target, mount.read_only, mount.bind) == (
        "/base/data",
        "/data",
        True,
        True,
    )
    named = parse_volume("cache:/cache", Path("/base"))
    assert (named.source, named.bind, named.read_only) == ("cache", False, False)


def test_gpus_become_device_requests() -> None:
    options = _options(gpus="all")
    (request,) = options["device_requests"]  # type: ignore[misc]
    assert request["Count"] == -1
    assert request["Capabilities"] == [["gpu"]]


@pytest.mark.parametrize(
    "spec",
    [
        {"sandbox": True},
        {"image": "x"},
        {"gpus": 1},
        {"provider": "docker", "sandbox": True, "workspace": "w"},
        {"provider": "docker", "resources": {"memory": "lots"}},
        {"provider": "docker", "volumes": ["no-target"]},
    ],
)
def test_container_settings_are_validated(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NodeSpec.model_validate(spec)


def test_container_settings_do_not_change_hashes_of_plain_nodes() -> None:
    assert ContainerSettings.launch_settings(NodeSpec()) == {}
    assert ContainerSettings.launch_settings(NodeSpec(provider="docker", sandbox=True)) == {
        "sandbox": True
    }


def _peer(name: str, provider: str, host: str, port: int, handle: dict[str, object]) -> NodeState:
    return NodeState(
        name=name,
        provider=provider,
        admin_token="x",
        launch_hash="h",
        host=host,
        port=port,
        handle=handle,
    )


def test_peer_urls_from_a_container() -> None:
    provider = DockerProvider(CONTEXT)
    sibling = _peer("b", "docker", "127.0.0.1", 40000, {"name": "codebolt-t-01234567-b"})
    local = _peer("c", "local", "127.0.0.1", 41000, {"pid": 1})
    remote = _peer("d", "ssh", "10.1.2.3", 3100, {})
    assert provider.peer_url(sibling) == "ws://b:3100"
    assert provider.peer_url(local) == "ws://host.docker.internal:41000"
    assert provider.peer_url(remote) == "ws://10.1.2.3:3100"


def test_sandbox_refuses_host_directories_even_read_only() -> None:
    with pytest.raises(ConfigError, match="may not mount a host directory"):
        _options(sandbox=True, volumes=["/run:/hostrun:ro"])
    assert _options(sandbox=True, volumes=["cache:/cache"])["volumes"]
