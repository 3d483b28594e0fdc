"""The swarm provider's rules and service spec, read as data (tests/swarm runs them on a real
swarm): what validate refuses where, what a service is given, and what it is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebolt_topo.errors import TopologyError
from codebolt_topo.plan.validate import validate_file
from codebolt_topo.providers.base import ProviderContext
from codebolt_topo.providers.swarm.constraints import constraints, label_hint, missing_labels
from codebolt_topo.providers.swarm.engine import sandbox_refusal
from codebolt_topo.providers.swarm.names import DNS_LABEL, SwarmNames
from codebolt_topo.providers.swarm.service_spec import service_options


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as raised:
        validate_file(path)
    return [f"{issue.field}: {issue.message}" for issue in raised.value.issues]


@pytest.mark.parametrize(
    ("node", "field", "words"),
    [
        ("{provider: swarm, volumes: ['data:/data']}", "nodes.a", "volume would live"),
        ("{provider: swarm, workspace: ./w}", "nodes.a", "workspace: a swarm task"),
        ("{provider: swarm, gpus: all}", "nodes.a", "give a number"),
    ],
)
def test_settings_that_tie_a_node_to_one_machine_are_refused(
    tmp_path: Path, node: str, field: str, words: str
) -> None:
    issues = _issues(tmp_path, f"name: t\nnodes:\n  a: {node}\n")
    (issue,) = issues
    assert issue.startswith(field)
    assert words in issue


def test_an_edge_from_a_swarm_node_to_this_machine_is_refused_at_the_edge(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path, "name: t\nnodes:\n  a: {provider: swarm}\n  b: {}\nedges: [a -> b]\n"
    )
    assert issues == [
        "edges[0]: edge a -> b: swarm node 'a' runs on any machine of the swarm and reaches only "
        "this topology's swarm services, not local node 'b'; make the target a swarm node or "
        "reverse the edge"
    ]


def _spec(tmp_path: Path, node: str) -> object:
    path = tmp_path / "topology.yaml"
    path.write_text(f"name: t\nnodes:\n  a: {node}\n")
    return validate_file(path).topology.nodes["a"]


def test_requirements_become_label_constraints_and_gpus_a_generic_resource(
    tmp_path: Path,
) -> None:
    spec = _spec(
        tmp_path,
        "{provider: swarm, requires: [gpu, 'python:3.11'], capabilities: [browser], gpus: 2}",
    )
    assert constraints(spec) == [  # type: ignore[arg-type]
        "node.labels.codebolt.browser == true",
        "node.labels.codebolt.gpu == true",
    ]
    ready = {"Status": {"State": "ready"}, "Spec": {"Availability": "active", "Labels": {}}}
    problem = missing_labels(spec, [ready])  # type: ignore[arg-type]
    assert problem == (
        "no ready, active swarm node of 1 has codebolt.browser=true, codebolt.gpu=true, "
        "2 NVIDIA-GPU generic resource(s)"
    )
    assert label_hint(spec).startswith(  # type: ignore[arg-type]
        "docker node update --label-add codebolt.browser=true --label-add codebolt.gpu=true NODE"
    )
    fit = {
        "Status": {"State": "ready"},
        "Spec": {
            "Availability": "active",
            "Labels": {"codebolt.gpu": "true", "codebolt.browser": "true"},
        },
        "Description": {
            "Resources": {
                "GenericResources": [{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}]
            }
        },
    }
    assert missing_labels(spec, [ready, fit]) is None  # type: ignore[arg-type]
    drained = {**fit, "Spec": {**fit["Spec"], "Availability": "drain"}}  # type: ignore[dict-item]
    assert missing_labels(spec, [drained]) is not None  # type: ignore[arg-type]


def test_the_service_shows_no_config_and_reserves_what_it_limits(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        "{provider: swarm, env: {API_KEY: s3cret}, resources: {cpus: 0.5, memory: 256m, pids: 64}}",
    )
    options = service_options(
        spec,  # type: ignore[arg-type]
        name="codebolt-t-1234abcd-a",
        image="img",
        labels={"org.codebolt.node": "a"},
        markers={"CODEBOLT_NODE": "a"},
        secret=("secret-id", "secret-name"),
        networks=["net"],
        alias="a",
    )
    shown = json.dumps(options, default=str)
    assert "s3cret" not in shown
    assert "API_KEY" not in shown
    assert options["env"] == ["CODEBOLT_NODE=a"]
    assert options["resources"] == {
        "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 2**20},
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 256 * 2**20, "Pids": 64},
    }
    (secret,) = options["secrets"]
    assert secret["File"] == {
        "Name": "codebolt-launch",
        "UID": "10001",
        "GID": "10001",
        "Mode": 0o400,
    }
    assert options["endpoint_spec"]["Mode"] == "dnsrr"
    assert options["restart_policy"]["Condition"] == "any"
    assert "cap_drop" not in options
    assert "read_only" not in options


def test_a_sandbox_service_drops_everything_it_can(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "{provider: swarm, sandbox: true}")
    options = service_options(
        spec,  # type: ignore[arg-type]
        name="n",
        image="img",
        labels={},
        markers={},
        secret=("i", "s"),
        networks=["sandbox"],
        alias="a",
    )
    assert options["cap_drop"] == ["ALL"]
    assert options["read_only"] is True
    assert options["user"] == "10001:10001"
    assert {m["Target"]: m["Type"] for m in options["mounts"]} == {
        "/workspace": "tmpfs",
        "/tmp": "tmpfs",
    }
    assert options["resources"]["Limits"]["Pids"] == 256  # docker's sandbox defaults


def test_service_names_stay_dns_labels(tmp_path: Path) -> None:
    names = SwarmNames(ProviderContext(topology="t" * 80, lineage="0" * 32, runtime_dir=tmp_path))
    assert len(names.service("a")) == DNS_LABEL
    assert names.service("a") != names.service("b")


@pytest.mark.parametrize(("version", "refused"), [("1.41", False), ("1.45", False), ("1.40", True)])
def test_a_sandbox_is_refused_by_a_manager_that_cannot_harden_it(
    version: str, refused: bool
) -> None:
    problem = sandbox_refusal(version)
    assert (problem is not None) is refused
    if problem is not None:
        assert problem.startswith(f"sandbox: this swarm manager speaks service API {version}")
