"""Issue-2 node guarantees that no other test pins down, against real daemons.

Notifications travel *down* the chain to the executing node's plugins (the upward direction is
``test_notify_fd_progress_arrives_upstream``); a hop keeps one persistent connection to its next
peer across requests; tokens never reach a daemon's log; and the token check compares against
every accepted digest with :func:`hmac.compare_digest`, whichever matches.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from codebolt_topo.client import Exit, NodeClient, Notification, Output, Started
from codebolt_topo.node.security import auth
from codebolt_topo.testing import ADMIN_TOKEN, Cluster
from codebolt_topo.wire.config import token_digest

MakeCluster = Callable[..., Cluster]  # the make_cluster fixture of conftest.py

PROBE = '''\
"""A node plugin for tests: records every notification that reaches this node."""
import json

from codebolt_topo.node.hooks import hookimpl


class Probe:
    @hookimpl
    def codebolt_node_notification(self, node, request_id, kind, data):
        with open(node.state_dir / "notes.jsonl", "a") as out:
            out.write(json.dumps({"node": node.name, "kind": kind, "data": data}) + "\\n")
'''


def _install_probe(site: Path) -> None:
    """A distribution on PYTHONPATH whose entry point registers the probe as a node plugin."""
    (site / "issue2_probe.py").write_text(PROBE)
    info = site / "issue2_probe-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: issue2-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[codebolt_topo.node_plugins]\nissue2-probe = issue2_probe:Probe\n"
    )


@pytest.mark.slow
def test_notifications_travel_down_to_the_executing_nodes_plugin(
    make_cluster: MakeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install_probe(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    probe: dict[str, object] = {"plugins": {"remote-execution": {}, "issue2-probe": {}}}
    cluster: Cluster = make_cluster([("a", "b"), ("b", "c")], c=probe)
    notes = cluster.root / "c" / "notes.jsonl"
    # The job ends once both notifications reached c, and prints what c's plugin saw.
    script = (
        f"until [ -f {notes} ] && [ $(wc -l < {notes}) -ge 2 ]; do sleep 0.02; done; cat {notes}"
    )

    async def go() -> tuple[list[str], bytes, Exit]:
        async with cluster.client("a") as client:
            handle = await client.exec("c", shell=script, timeout=20)
            path: list[str] = []
            out, end = b"", None
            async for event in handle:
                if isinstance(event, Started):
                    path = event.path
                    await handle.notify("hello", {"x": 1}, node="c")  # by the node's channel
                    await handle.notify("all-nodes", [1, 2])  # by the request: every target
                elif isinstance(event, Output):
                    out += event.data if event.stream == "stdout" else b""
                    assert event.stream == "stdout", event.data
                elif isinstance(event, Exit):
                    end = event
            assert end is not None
            return path, out, end

    path, out, end = asyncio.run(go())
    assert path == ["a", "b", "c"]
    assert end.code == 0
    assert not end.timed_out
    seen = [json.loads(line) for line in out.decode().splitlines()]
    assert sorted(seen, key=lambda n: n["kind"]) == [
        {"node": "c", "kind": "all-nodes", "data": [1, 2]},
        {"node": "c", "kind": "hello", "data": {"x": 1}},
    ]
    assert not (cluster.root / "b" / "notes.jsonl").exists()  # b only relayed them


def _connections(pid: int, port: int) -> set[int]:
    """Local ports of ``pid``'s established TCP connections to loopback ``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
                    found.add(int(local.split(":")[1], 16))
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_each_hop_keeps_one_persistent_connection_to_its_peer(chain: Cluster) -> None:
    async def run_once() -> bytes:
        async with chain.client("a") as client:
            result = await (await client.exec("d", argv=["echo", "x"])).result()
            return bytes(result["d"].stdout)

    seen: list[tuple[set[int], set[int], set[int]]] = []
    for _ in range(4):  # a new client connection each time: the hops' links stay
        assert asyncio.run(run_once()) == b"x\n"
        seen.append(
            tuple(  # type: ignore[arg-type]
                _connections(chain.pids[src], chain.ports[dst])
                for src, dst in (("a", "b"), ("b", "c"), ("c", "d"))
            )
        )
    first = seen[0]
    assert all(len(links) == 1 for links in first), first
    assert seen == [first] * 4, "a hop reconnected to its peer between requests"


@pytest.mark.slow
def test_tokens_never_reach_a_daemons_log(make_cluster: MakeCluster) -> None:
    cluster: Cluster = make_cluster([("a", "b"), ("b", "c")])
    wrong = "wrong-token-issue2-" + "z" * 20

    async def traffic() -> None:
        async with cluster.client("a") as client:
            await (await client.exec("c", argv=["true"])).result()
            await (await client.exec("nowhere", argv=["true"])).result()
        for node in cluster.nodes:  # every refusal path: wrong, peer token at the wrong node
            others = [cluster.edge_token(s, t) for s, t in cluster.edges if t != node]
            for token in (wrong, *others):
                with pytest.raises(Exception, match="refused the token"):
                    async with NodeClient.connect(cluster.url(node), token, name=node):
                        pass
        await cluster.configure()

    asyncio.run(traffic())
    # A raw handshake with a token in an unexpected place too.
    with socket.create_connection(("127.0.0.1", cluster.ports["b"])) as raw:
        raw.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\n\r\n".encode())
        raw.recv(4096)
    cluster.stop()
    secrets = [ADMIN_TOKEN, wrong, *(cluster.edge_token(s, t) for s, t in cluster.edges)]
    for node in cluster.nodes:
        log = (cluster.root / node / "daemon.log").read_text()
        assert f"listening on 127.0.0.1:{cluster.ports[node]}" in log  # loopback by default
        for secret in secrets:
            assert secret not in log, f"{node}'s log contains a token"


def test_the_token_is_compared_against_every_digest_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)  # auth looks it up at each call
    accept = {"p": token_digest("peer-p"), "q": token_digest("peer-q")}
    admin = token_digest("the-admin")
    for token, principal in (
        ("the-admin", auth.ADMIN),
        ("peer-p", "p"),
        ("peer-q", "q"),
        ("nobody", None),
    ):
        calls.clear()
        assert auth.authenticate(f"Bearer {token}", admin, accept) == principal
        # Every digest is compared, matched or not, and only digests (fixed length) are.
        assert [b for _, b in calls] == [admin.encode(), *(d.encode() for d in accept.values())]
        assert {len(a) for a, _ in calls} == {len(admin)}


def test_exit_carries_code_or_signal_and_a_measured_duration(chain: Cluster) -> None:
    log_line = (
        "import os,json,time;f=os.fdopen(int(os.environ['CODEBOLT_NOTIFY_FD']),'w');"
        "print(json.dumps({'kind':'log','data':{'level':'info','msg':'warming up'}}),"
        "file=f,flush=True);time.sleep(0.3);raise SystemExit(3)"
    )

    async def main() -> tuple[Exit, Exit, list[Notification]]:
        async with chain.client("a") as client:
            coded = await client.exec("d", argv=[sys.executable, "-c", log_line])
            notes: list[Notification] = []
            first: Exit | None = None
            async for event in coded:
                if isinstance(event, Notification):
                    notes.append(event)
                elif isinstance(event, Exit):
                    first = event
            killed = await (await client.exec("d", shell="kill -TERM $$")).result()
            assert first is not None
            final = killed["d"].exit
            assert final is not None
            return first, final, notes

    coded, killed, notes = asyncio.run(main())
    assert (coded.node, coded.code, coded.signal) == ("d", 3, None)
    assert 0.3 <= coded.duration < 5
    assert (killed.code, killed.signal) == (None, "SIGTERM")
    assert not killed.cancelled
    assert 0 <= killed.duration < coded.duration
    assert [(n.node, n.kind, n.data) for n in notes] == [
        ("d", "log", {"level": "info", "msg": "warming up"})
    ]


def test_a_node_listens_on_loopback_port_3100_unless_configured() -> None:
    from codebolt_topo.wire.config import LaunchConfig

    config = LaunchConfig(
        topology="t", node="a", admin_token_digest=token_digest("x"), workspace=".", state_dir="."
    )
    assert (config.host, config.port) == ("127.0.0.1", 3100)


def test_the_server_declines_compression_even_when_offered(chain: Cluster) -> None:
    """Bulk output is never deflated: a client offering permessage-deflate is answered without
    it (websockets offers it by default)."""
    from websockets.asyncio.client import connect

    from codebolt_topo.wire.handshake import SUBPROTOCOL

    async def handshake() -> tuple[str | None, str | None]:
        async with connect(
            chain.url("a"),
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as ws:
            assert ws.request is not None
            assert ws.response is not None
            return (
                ws.request.headers.get("Sec-WebSocket-Extensions"),
                ws.response.headers.get("Sec-WebSocket-Extensions"),
            )

    offered, accepted = asyncio.run(handshake())
    assert offered is not None
    assert "permessage-deflate" in offered
    assert accepted is None
