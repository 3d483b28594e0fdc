"""Use case: a distributed team (examples/distributed-team), run as its README section shows.

Three developer nodes send work through one orchestrator to shared workers. Each developer's
tokens are its own: another node refuses them, and a developer can neither claim another's
identity at the hub nor reach another's job at a worker (attach, duplicate exec), even knowing
its request id. One developer's node dying leaves the others' running work untouched.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from e2e_helpers import applied, codebolt, copy_example, ok
from websockets.asyncio.client import connect

from codebolt_topo.client import ExecResult, NodeClient, Output
from codebolt_topo.engine.operations import state_file_for
from codebolt_topo.errors import ConfigError
from codebolt_topo.model.state import State
from codebolt_topo.wire.handshake import SUBPROTOCOL

pytestmark = pytest.mark.slow

TICKS = (
    "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do echo tick $i; sleep 0.1; done"
)


def test_developers_share_workers_through_the_hub(tmp_path: Path) -> None:
    folder = copy_example("distributed-team", tmp_path)
    with applied(folder):
        result = codebolt(
            "exec",
            "--from",
            "dev-alice",
            "worker-1,worker-2",
            "--",
            "sh",
            "-c",
            'echo "hello from $CODEBOLT_NODE"',
            cwd=folder,
        )
        assert sorted(ok(result).splitlines()) == [
            "[worker-1] hello from worker-1",
            "[worker-2] hello from worker-2",
        ]
        assert "via dev-alice -> orchestrator -> worker-1" in result.stderr
        bob = ok(
            codebolt(
                "exec",
                "--from",
                "dev-bob",
                "worker-2",
                "--",
                "sh",
                "-c",
                'echo "bob on $CODEBOLT_NODE"',
                cwd=folder,
            )
        )
        assert bob == "bob on worker-2\n"
        asyncio.run(_isolation(state_file_for(folder / "topology.yaml", "team").load()))


async def _isolation(state: State) -> None:
    def url(node: str) -> str:
        held = state.nodes[node].url
        assert held is not None
        return held

    def token(node: str) -> str:
        return state.nodes[node].admin_token

    async with NodeClient.connect(url("dev-alice"), token("dev-alice")) as alice:
        job = await alice.exec("worker-1", shell=TICKS, request_id="alice-train-1")
        first = await anext(job)
        while not isinstance(first, Output):
            first = await anext(job)

        async with NodeClient.connect(url("dev-bob"), token("dev-bob")) as bob:
            watched = await (await bob.attach("alice-train-1", "worker-1")).result()
            _refused(watched, "belongs to another owner")
            again = await (
                await bob.exec("worker-1", shell=TICKS, request_id="alice-train-1")
            ).result()
            _refused(again, "belongs to another owner")

        with pytest.raises(ConfigError):
            async with NodeClient.connect(url("dev-bob"), token("dev-alice")):
                pass
        refusal = await _forged(url("orchestrator"), state.edge_tokens["dev-bob->orchestrator"])
        assert refusal["code"] == "forbidden"
        assert "'dev-bob' may not act for 'dev-alice'" in refusal["message"]

        # Bob's node goes away mid-run: Alice's job and Carol's work are not disturbed.
        os.kill(int(state.nodes["dev-bob"].handle["pid"]), signal.SIGKILL)
        async with NodeClient.connect(url("dev-carol"), token("dev-carol")) as carol:
            done = await (await carol.exec("worker-2", argv=["echo", "carol"])).result()
            assert done["worker-2"].stdout == b"carol\n"
        rest = await job.result()
        ticks = (first.data + rest["worker-1"].stdout).decode().split()
        assert ticks == [word for i in range(1, 21) for word in ("tick", str(i))]
        exit_ = rest["worker-1"].exit
        assert exit_ is not None
        assert exit_.code == 0


def _refused(result: ExecResult, reason: str) -> None:
    failures = [f for node in result.nodes.values() if (f := node.failure)] + result.failures
    assert failures, "the request should have been refused"
    assert all(f.code == "forbidden" and reason in f.message for f in failures), failures


async def _forged(url: str, edge_token: str) -> dict[str, object]:
    """What the hub answers dev-bob's edge token claiming a request owned by dev-alice."""
    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {edge_token}"},
        subprotocols=[SUBPROTOCOL],
    ) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {
                    "t": "exec",
                    "id": "forged",
                    "target": "worker-1",
                    "argv": ["true"],
                    "owner": "dev-alice",
                }
            )
        )
        reply: dict[str, object] = json.loads(await ws.recv())
        return reply
