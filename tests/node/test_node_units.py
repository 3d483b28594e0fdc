"""Pure pieces around the protocol: auth, gateway, plugin host, routing decisions, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import pytest

from codebolt_topo.errors import ConfigError
from codebolt_topo.node.gateway import ExecutionGateway, GatewayError
from codebolt_topo.node.hooks import NodeContext, hookimpl
from codebolt_topo.node.jobs.executor import parse_signal
from codebolt_topo.node.plugins import PluginHost, load_plugin_class
from codebolt_topo.node.plugins.remote_execution import RemoteExecutionPlugin
from codebolt_topo.node.router import Router, check_forward
from codebolt_topo.node.security.auth import ADMIN, authenticate
from codebolt_topo.testing import shortest_routes
from codebolt_topo.wire.config import PeerLink, RuntimeConfig, token_digest

ADMIN_DIGEST = token_digest("root")
ACCEPT = {"a": token_digest("tok-a"), "c": token_digest("tok-c")}


@pytest.mark.parametrize(
    ("header", "principal"),
    [
        ("Bearer root", ADMIN),
        ("bearer root", ADMIN),
        ("Bearer tok-a", "a"),
        ("Bearer tok-c", "c"),
        ("Bearer  tok-c ", "c"),
        ("Bearer wrong", None),
        ("Basic root", None),
        ("Bearer ", None),
        ("root", None),
        (None, None),
    ],
)
def test_authenticate(header: str | None, principal: str | None) -> None:
    assert authenticate(header, ADMIN_DIGEST, ACCEPT) == principal


def test_gateway_exclusive_claim() -> None:
    gateway = ExecutionGateway("b")
    assert not gateway.active
    assert "no plugin claims" in (gateway.refusal() or "")
    gateway.claim("remote-execution")
    gateway.claim("remote-execution")  # idempotent for the same owner
    assert gateway.claimant == "remote-execution"
    assert gateway.refusal() is None
    with pytest.raises(GatewayError, match="already claimed by 'remote-execution'"):
        gateway.claim("other")
    with pytest.raises(GatewayError, match="does not hold"):
        gateway.release("other")
    gateway.release("remote-execution")
    assert not gateway.active


def context() -> NodeContext:
    return NodeContext(
        name="b",
        topology="t",
        workspace=Path("."),
        execution_gateway=ExecutionGateway("b"),
        logger=logging.getLogger("t"),
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def codebolt_node_enable(self, name: str, settings: dict[str, Any]) -> None:
        self.calls.append(("enable", settings))

    @hookimpl
    def codebolt_node_settings(self, settings: dict[str, Any]) -> None:
        self.calls.append(("settings", settings))

    @hookimpl
    def codebolt_node_disable(self) -> None:
        self.calls.append(("disable", None))


def test_plugin_host_enables_reconfigures_disables() -> None:
    made: list[Recorder] = []

    def loader(name: str) -> Any:
        def factory() -> Recorder:
            made.append(Recorder())
            return made[-1]

        return factory

    host = PluginHost(context(), loader=loader)
    host.apply({"rec": {"x": 1}})
    host.apply({"rec": {"x": 1}})
    host.apply({"rec": {"x": 2}})
    assert host.enabled == ["rec"]
    host.apply({})
    assert host.enabled == []
    assert made[0].calls == [("enable", {"x": 1}), ("settings", {"x": 2}), ("disable", None)]


def test_plugin_host_unknown_plugin_changes_nothing() -> None:
    host = PluginHost(context())
    host.apply({"remote-execution": {}})
    with pytest.raises(ConfigError, match=r"unknown node plugin 'nope'.*remote-execution"):
        host.apply({"nope": {}})
    assert host.enabled == ["remote-execution"]
    host.close()
    assert host.enabled == []


def test_remote_execution_claims_gateway_via_entry_point() -> None:
    assert load_plugin_class("remote-execution") is RemoteExecutionPlugin
    ctx = context()
    host = PluginHost(ctx)
    host.apply({"remote-execution": {}})
    assert ctx.execution_gateway.claimant == "remote-execution"
    assert host.hook.codebolt_node_admit(node=ctx, principal="a", request={}) is None
    host.apply({"remote-execution": {"allow": ["c"]}})
    assert "from 'a'" in host.hook.codebolt_node_admit(node=ctx, principal="a", request={})
    host.apply({})
    assert not ctx.execution_gateway.active


def test_second_claimant_aborts_enable() -> None:
    ctx = context()
    ctx.execution_gateway.claim("someone-else")
    host = PluginHost(ctx)
    with pytest.raises(GatewayError):
        host.apply({"remote-execution": {}})
    assert host.enabled == []
    assert ctx.execution_gateway.claimant == "someone-else"


@pytest.mark.parametrize(
    ("hops", "path", "code"),
    [
        (1, [], None),
        (0, [], "hop-limit"),
        (-1, [], "hop-limit"),
        (3, ["a", "b"], "loop"),
        (3, ["a"], None),
    ],
)
def test_check_forward(hops: int, path: list[str], code: str | None) -> None:
    refused = check_forward("b", hops, path)
    assert (refused[0] if refused else None) == code


def test_router_candidates_and_split() -> None:
    router = Router("a")
    router.update(
        RuntimeConfig(
            peers={"b": PeerLink(url="ws://x", token="t"), "c": PeerLink(url="ws://y", token="t")},
            routes={"d": ["b", "c"], "e": ["c"]},
        )
    )
    assert router.candidates("d") == ["b", "c"]
    assert router.candidates("b") == ["b"]  # a direct peer needs no route entry
    assert router.candidates("zz") == []
    assert Router.split({"d": ["b", "c"], "e": ["c"], "b": ["b"]}) == {"b": ["d", "b"], "c": ["e"]}


def test_router_update_reports_changed_peers() -> None:
    router = Router("a")
    assert router.update(RuntimeConfig()) == []
    assert router.peers == {}


def test_shortest_routes_mesh() -> None:
    routes = shortest_routes(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a"), ("a", "c")])
    assert routes["a"] == {"b": ["b"], "c": ["c"]}
    assert routes["b"] == {"c": ["c"], "a": ["c"]}


@pytest.mark.parametrize("name", ["SIGINT", "INT", "sigint", "2"])
def test_parse_signal(name: str) -> None:
    assert parse_signal(name) is signal.SIGINT


def test_parse_signal_unknown() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        parse_signal("SIGNOPE")


class _Sink:
    def __init__(self) -> None:
        self.data = [b"", b"", b""]
        self.paused = False

    async def output(self, stream: int, data: bytes) -> None:
        self.data[stream] += data

    def notify(self, kind: str, data: object) -> None:
        pass

    def release(self) -> None:
        pass


@pytest.mark.parametrize(
    "argv", [["sh", "-c", "head -c 3000000 /dev/zero; echo err >&2"], ["sh", "-c", "sleep 5"]]
)
def test_local_job_streams_big_output_and_closes_its_pipes(tmp_path: Path, argv: list[str]) -> None:
    import os

    from codebolt_topo.node.jobs.executor import LocalJob

    async def main() -> tuple[_Sink, dict[str, object]]:
        sink = _Sink()
        job = LocalJob(
            node="n",
            request={"id": "r", "argv": argv, "timeout": 0.3},
            base_env=dict(os.environ),
            workspace=tmp_path,
            sink=sink,
        )
        await job.start()
        return sink, await job.run()

    before = set(os.listdir("/proc/self/fd"))
    sink, exit_message = asyncio.run(main())
    assert set(os.listdir("/proc/self/fd")) <= before  # every pipe end closed
    if "sleep" in argv[-1]:
        assert exit_message["timed_out"]
        assert exit_message["signal"] == "SIGTERM"
    else:
        assert sink.data[1] == bytes(3_000_000)
        assert sink.data[2] == b"err\n"
        assert exit_message["stdout_bytes"] == 3_000_000
