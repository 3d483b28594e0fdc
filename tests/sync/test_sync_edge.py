"""Issue 14, item 3: nodes sync node to node along the edge; the orchestrator asks and reports.

Real daemons, real sockets. ``a -> b`` is dialed by its sender, ``a -> c`` by its receiver
(``dial: receiver``: the link is the connection ``c`` opened to ``a``); both sync ``both``, so
push and pull run over each kind of link. ``evil`` runs its narrative commands through a
wrapper that corrupts every bundle it exports: what ``a`` pulls from it must be refused before a
ref moves. The orchestrator's own socket shows that no bundle crosses
it (the kernel's byte counters of its connection), and no node holds another's admin token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from codebolt_topo.client import NodeClient
from codebolt_topo.engine.operations import apply_topology, destroy_topology, state_file_for
from codebolt_topo.engine.sync import (
    SyncReport,
    Transfer,
    node_narrative,
    snapshot_nodes,
    sync_edges,
)
from codebolt_topo.engine.sync_relay import predates_sync, relay_transfer
from codebolt_topo.errors import ExecError
from codebolt_topo.model.state import State

pytestmark = pytest.mark.slow

EVIL = """\
#!/bin/sh
# Runs the narrative entry point; an export's bundle comes out with bytes flipped mid-pack,
# and an import refuses at once, its input unread.
if [ "$3" = import ]; then
  echo "error: refused by evil, unread" >&2
  exit 1
elif [ "$3" = export ]; then
  "{python}" "$@" | "{python}" -c '
import sys
data = bytearray(sys.stdin.buffer.read())
if data:
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0x5A for b in data[middle:middle + 64])
sys.stdout.buffer.write(data)
'
else
  exec "{python}" "$@"
fi
"""

TOPOLOGY = """\
name: edgesync
nodes:
  a: {{}}
  b: {{}}
  c: {{}}
  evil: {{env: {{CODEBOLT_PYTHON: "{evil}"}}}}
edges:
  - {{from: a, to: b, sync: both}}
  - {{from: a, to: c, sync: both, dial: receiver}}
  - {{from: a, to: evil, sync: both}}
"""


@dataclass
class Net:
    path: Path

    @property
    def state(self) -> State:
        return state_file_for(self.path, "edgesync").load()

    def workspace(self, node: str) -> Path:
        return self.path.parent / ".codebolt" / "edgesync" / "nodes" / node / "workspace"

    def write(self, node: str, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            target = self.workspace(node) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def files(self, node: str) -> dict[str, bytes]:
        root = self.workspace(node)
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    def snapshot(self, node: str, thread: str, run: str = "r") -> dict[str, Any]:
        return asyncio.run(snapshot_nodes(self.path, [node], "obj", thread, run))[node]

    def sync(self, *edges: str) -> SyncReport:
        return asyncio.run(sync_edges(self.path, list(edges)))

    def call(self, node: str, command: str, *args: str) -> Any:
        state = self.state

        async def go() -> Any:
            async with NodeClient.admin(state.nodes[node]) as client:
                return await node_narrative(client, state, node).call(command, *args)

        return asyncio.run(go())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("edgesync")
    evil = root / "evil-python"
    evil.write_text(EVIL.format(python=sys.executable))
    evil.chmod(evil.stat().st_mode | stat.S_IXUSR)
    path = root / "topology.yaml"
    path.write_text(TOPOLOGY.format(evil=evil))
    try:
        apply_topology(path)
        yield Net(path)
    finally:
        destroy_topology(path)


def _tcp_bytes(link: Any) -> int:
    """Bytes the kernel moved on a link's socket, both ways (TCP_INFO ``tcpi_bytes_acked`` +
    ``tcpi_bytes_received``): framing, TLS, everything that crossed this process."""
    sock = link.ws.transport.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    sent, received = struct.unpack_from("<QQ", info, 120)
    return int(sent + received)


@pytest.mark.parametrize("edge", ["a->b", "a->c"], ids=["sender-dials", "receiver-dials"])
def test_push_pull_both_and_incremental_node_to_node(net: Net, edge: str) -> None:
    peer = edge[-1]
    thread = f"both-{peer}"
    net.write("a", {f"{thread}/m{i}.bin": os.urandom(4096) for i in range(30)})
    first = net.snapshot("a", thread)
    push, pull = net.sync(edge).transfers
    assert [t.route for t in (push, pull)] == ["edge", "edge"]
    assert (push.transfer.direction, push.transfer.receiver) == ("push", peer)
    assert thread in push.created  # (with what earlier tests left on a)
    assert push.bytes > 30 * 4096
    assert thread in pull.unchanged
    net.call(peer, "restore", first["snapshot_id"], "--force")
    assert net.files(peer)[f"{thread}/m0.bin"] == net.files("a")[f"{thread}/m0.bin"]

    net.write(peer, {f"{thread}/back.txt": f"written on {peer}\n".encode()})
    second = net.snapshot(peer, thread, run="r2")
    again_push, again_pull = net.sync(edge).transfers
    assert again_push.bytes < push.bytes / 10  # a sends only what the peer lacks: nothing new
    assert again_pull.updated == [thread]
    assert again_pull.bytes < push.bytes / 10
    assert again_pull.objects_written == 4  # commit, root tree, the thread's tree, back.txt
    net.call("a", "restore", second["snapshot_id"], "--force")
    assert net.files("a")[f"{thread}/back.txt"] == f"written on {peer}\n".encode()


def test_no_bundle_byte_crosses_the_orchestrator(net: Net) -> None:
    """What ``sync_edges`` sends the sender, on an admin connection whose socket the kernel
    counts: the 8 MiB bundle goes from ``a`` to ``c``, a few KiB cross the orchestrator."""
    net.write("a", {"big/blob.bin": os.urandom(8 << 20)})
    net.snapshot("a", "big")
    state = net.state

    async def ask() -> tuple[dict[str, Any], int]:
        async with NodeClient.admin(state.nodes["a"]) as client:
            link = await client.link()
            before = _tcp_bytes(link)
            synced = await client.sync("c", "push")
            return synced, _tcp_bytes(link) - before

    synced, crossed = asyncio.run(ask())
    assert synced["bytes"] > 8 << 20
    assert "big" in synced["report"]["created"]
    assert crossed < 16 << 10, f"{crossed} bytes through the orchestrator for {synced['bytes']}"

    async def relay() -> tuple[int, int]:  # the same history to b the old way: the counters see it
        async with NodeClient.admin(state.nodes["a"]) as a, NodeClient.admin(state.nodes["b"]) as b:
            links = [await a.link(), await b.link()]
            before = sum(map(_tcp_bytes, links))
            done = await relay_transfer(
                Transfer("a->b", "push", "a", "b"),
                node_narrative(a, state, "a"),
                node_narrative(b, state, "b"),
            )
            return done.bytes, sum(map(_tcp_bytes, links)) - before

    relayed, through = asyncio.run(relay())
    assert relayed > 8 << 20
    assert through > 2 * relayed  # out of a, into b: every byte twice


def test_an_orchestrator_gone_mid_sync_stops_it_and_nothing_moves(net: Net) -> None:
    """Its connection closes while ``a`` streams a 32 MiB bundle into ``b``'s import: the
    import on ``b`` is cancelled before its end of input (no ref moves, no job is left) and
    ``a``'s export child is killed."""
    net.write("a", {"gone/blob.bin": os.urandom(32 << 20)})
    net.snapshot("a", "gone")
    state = net.state

    async def walk_away() -> None:
        importing = asyncio.Event()

        def heard(message: dict[str, Any]) -> None:
            if message["data"]["stage"] == "import":
                importing.set()

        async with NodeClient.admin(state.nodes["a"]) as client:
            link = await client.link()
            asked = asyncio.ensure_future(
                link.call({"t": "sync", "peer": "b", "direction": "push"}, heard)
            )
            await asyncio.wait_for(importing.wait(), 30)
        with pytest.raises(ExecError, match="lost"):
            await asked

    asyncio.run(walk_away())
    pid = state.nodes["a"].handle["pid"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        jobs = asyncio.run(_jobs(state, "b"))
        if jobs == 0 and not _narrative_children(pid):
            break
        time.sleep(0.2)
    assert (jobs, _narrative_children(pid)) == (0, [])
    assert "gone" not in json.dumps(net.call("b", "heads", "--remotes"))


async def _jobs(state: State, node: str) -> int:
    async with NodeClient.admin(state.nodes[node]) as client:
        return int((await client.info())["jobs"])


def _narrative_children(pid: int) -> list[int]:
    """Children of process ``pid`` running the narrative entry point."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent = int(stat_file.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat_file.parent / "cmdline").read_bytes()
            if parent == pid and b"codebolt_topo.narrative" in command:
                found.append(int(stat_file.parent.name))
    return found


def test_a_cancelled_sync_is_answered_and_moves_nothing(net: Net) -> None:
    """``cancel`` with the ``sync``'s id, on a connection that stays open: the caller gets
    ``error`` code ``cancelled``, and the receiver took nothing."""
    net.write("a", {"called-off/blob.bin": os.urandom(32 << 20)})
    net.snapshot("a", "called-off")
    state = net.state

    class Answers:
        def __init__(self) -> None:
            self.importing = asyncio.Event()
            self.last: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def on_control(self, message: dict[str, Any]) -> None:
            if message["t"] == "notify" and message["data"]["stage"] == "import":
                self.importing.set()
            elif message["t"] in ("synced", "error") and not self.last.done():
                self.last.set_result(message)

        async def on_data(self, frame: bytes) -> None: ...
        async def on_done(self) -> None: ...
        async def on_lost(self, reason: str) -> None: ...

    async def call_off() -> dict[str, Any]:
        async with NodeClient.admin(state.nodes["a"]) as client:
            link = await client.link()
            answers = Answers()
            sync = {"t": "sync", "id": "s-1", "peer": "c", "direction": "push"}
            await link.request(sync, answers)
            await asyncio.wait_for(answers.importing.wait(), 30)
            await link.send(json.dumps({"t": "cancel", "id": "s-1"}))
            return await asyncio.wait_for(answers.last, 30)

    answer = asyncio.run(call_off())
    assert (answer["t"], answer["code"], answer["id"]) == ("error", "cancelled", "s-1")
    assert "called-off" not in json.dumps(net.call("c", "heads", "--remotes"))


def test_a_corrupt_bundle_from_the_peer_is_refused_before_refs_move(net: Net) -> None:
    net.write("evil", {"evil.txt": os.urandom(64 << 10)})
    net.snapshot("evil", "hostile")
    heads_before = net.call("a", "heads", "--remotes")
    with pytest.raises(ExecError) as refused:
        _ask(net.state, "a", "evil", "pull")
    assert "narrative import" in str(refused.value)
    assert net.call("a", "heads", "--remotes") == heads_before
    assert not any("hostile" in ref for ref in heads_before)


def test_a_receiver_that_refuses_the_bundle_unread_ends_the_push_cleanly(net: Net) -> None:
    """``evil``'s import exits before reading a byte of a 16 MiB bundle: the push fails
    naming why, at once, and ``a``'s export child does not outlive it."""
    net.write("a", {"refused/blob.bin": os.urandom(16 << 20)})
    net.snapshot("a", "refused")
    state = net.state
    with pytest.raises(ExecError, match="narrative import: refused by evil, unread"):
        _ask(state, "a", "evil", "push")
    assert _narrative_children(state.nodes["a"].handle["pid"]) == []

    async def through_the_link() -> int | None:  # the link a -> evil still carries work
        async with NodeClient.admin(state.nodes["a"]) as client:
            handle = await client.exec("evil", argv=["true"])
            result = await asyncio.wait_for(handle.result(), 15)
            exit_ = result["evil"].exit
            return exit_.code if exit_ else None

    assert asyncio.run(through_the_link()) == 0


def _ask(state: State, sender: str, peer: str, direction: Literal["push", "pull"]) -> Any:
    async def ask() -> dict[str, Any]:
        async with NodeClient.admin(state.nodes[sender]) as client:
            return await asyncio.wait_for(client.sync(peer, direction), 60)

    return asyncio.run(ask())


def test_the_orchestrator_asks_only_a_sender_about_its_own_edges(net: Net) -> None:
    state = net.state

    async def ask() -> None:
        async with NodeClient.admin(state.nodes["b"]) as client:
            await client.sync("a", "push")

    with pytest.raises(ExecError, match="no edge to 'a'") as refused:
        asyncio.run(ask())
    assert refused.value.code == "bad-request"


def test_a_node_that_does_not_know_a_message_fails_the_call_instead_of_hanging(net: Net) -> None:
    """A node that predates ``sync`` refuses it unread (``bad-request``, ``id`` null): the
    caller's pending call must get that refusal, which sends the engine to the relayed path."""
    state = net.state

    async def ask() -> dict[str, Any]:
        async with NodeClient.admin(state.nodes["a"]) as client:
            link = await client.link()
            return await asyncio.wait_for(link.call({"t": "sync-from-the-future"}), 10)

    with pytest.raises(ExecError) as refused:
        asyncio.run(ask())
    assert refused.value.code == "bad-request"
    old_node = str(refused.value).replace("'sync-from-the-future'", "'sync'")
    assert predates_sync(ExecError(old_node, code="bad-request"))


def test_nodes_hold_no_admin_token_of_each_other(net: Net) -> None:
    state = net.state
    tokens = {name: node.admin_token.encode() for name, node in state.nodes.items()}
    for name, node in state.nodes.items():
        held = _node_files(net.path.parent / ".codebolt" / "edgesync" / "nodes" / name)
        pid = node.handle.get("pid")
        if isinstance(pid, int):
            held.append(Path(f"/proc/{pid}/environ").read_bytes())
            held.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        others = [token for other, token in tokens.items() if other != name]
        assert held
        assert not any(token in blob for token in others for blob in held), name


def _node_files(root: Path) -> list[bytes]:
    """Every small file of a node's directory outside its workspace and store."""
    return [
        p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
        and "workspace" not in p.relative_to(root).parts[0]
        and p.stat().st_size < 1 << 20
    ]
