"""A proxy in the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) is not used to reach a node
on a loopback address: neither by a client nor by a node's link to its peer. websockets uses
the environment's proxy by default, so with a proxy set and no NO_PROXY, every exec to a local
node failed with "Connect call failed ('127.0.0.1', 9)"."""

from __future__ import annotations

import asyncio

import pytest

from codebolt_topo.client import Exit, Output
from codebolt_topo.wire.link import _proxy_for

DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing answers there


def test_loopback_addresses_bypass_the_proxy_and_names_ask_the_environment() -> None:
    assert _proxy_for("ws://127.0.0.1:3100") is None
    assert _proxy_for("wss://[::1]:3100") is None
    assert _proxy_for("ws://localhost:3100") is None
    assert _proxy_for("ws://127.3.4.5:1") is None
    assert _proxy_for("wss://node.example.com:443") is True
    assert _proxy_for("ws://10.0.0.7:3100") is True


def test_exec_through_a_hop_works_with_a_dead_proxy_in_the_environment(
    make_cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(variable, DEAD_PROXY)
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    assert callable(make_cluster)
    cluster = make_cluster([("a", "b")])  # the daemons inherit the proxy settings too

    async def run() -> tuple[bytes, list[int]]:
        out, codes = b"", []
        async with cluster.client("a") as client:
            async for event in await client.exec("b", argv=["echo", "through a"]):
                if isinstance(event, Output):
                    out += event.data
                elif isinstance(event, Exit):
                    codes.append(event.code)
        return out, codes

    assert asyncio.run(run()) == (b"through a\n", [0])
