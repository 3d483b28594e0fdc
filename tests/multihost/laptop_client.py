"""A developer's own client, run on a laptop of a :class:`~multihost.network.Lab` (``ip netns
exec``): it reaches the joined node of the join directory ``DIR`` with that machine's admin
token, as ``codebolt exec`` there does, and prints what happened as one JSON line.

``python laptop_client.py DIR run ID TARGET SHELL``: run SHELL on TARGET as request ID; prints
``{"ready": true}`` once the first output came back, then the result.
``python laptop_client.py DIR steal ID TARGET``: attach to request ID on TARGET, then repeat it;
prints the failures of both.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from codebolt_topo.client import ExecResult, NodeClient, Output
from codebolt_topo.providers.joined.member import JoinedHome


def _failures(result: ExecResult) -> list[dict[str, str]]:
    found = [f for node in result.nodes.values() if (f := node.failure)] + result.failures
    return [{"code": f.code, "message": f.message} for f in found]


async def main(directory: str, mode: str, request: str, target: str, *rest: str) -> None:
    membership = JoinedHome(Path(directory)).membership()
    async with NodeClient.connect(membership.url, membership.admin_token) as node:
        if mode == "run":
            job = await node.exec(target, shell=rest[0], request_id=request)
            first = await anext(job)
            while not isinstance(first, Output):
                first = await anext(job)
            print(json.dumps({"ready": True}), flush=True)
            rest_of = await job.result()
            exit_ = rest_of[target].exit
            print(
                json.dumps(
                    {
                        "stdout": (first.data + rest_of[target].stdout).decode(),
                        "code": exit_.code if exit_ else None,
                        "failures": _failures(rest_of),
                    }
                ),
                flush=True,
            )
        else:
            watched = await (await node.attach(request, target)).result()
            again = await (await node.exec(target, argv=["true"], request_id=request)).result()
            print(json.dumps({"attach": _failures(watched), "exec": _failures(again)}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
