"""The state one node daemon shares across its connections.

:class:`NodeCore` holds the launch and runtime configuration, the ExecutionGateway and plugin
host, the router, and the jobs this node executes (:class:`~codebolt_topo.node.jobs.table.JobTable`,
which outlives every connection). It decides who may do what (``refusal``), what may enter
and start here (``admission``, ``new_job_refusal``: limits and replayed frames) and answers
``info`` and ``configure``; sessions do the per-connection work.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from codebolt_topo import __version__
from codebolt_topo.capabilities import detected_here
from codebolt_topo.errors import TopoError
from codebolt_topo.node.dialer import Dialers
from codebolt_topo.node.gateway import ExecutionGateway
from codebolt_topo.node.hooks import NodeContext
from codebolt_topo.node.jobs.table import JobTable
from codebolt_topo.node.keepers import LinkKeepers
from codebolt_topo.node.plugins import PluginHost
from codebolt_topo.node.presence import Presence
from codebolt_topo.node.router import Router
from codebolt_topo.node.security.auth import ADMIN
from codebolt_topo.node.security.limits import (
    DescriptorGauge,
    Usage,
    job_over_limit,
    pipes_of,
    request_over_limit,
)
from codebolt_topo.node.security.principals import OWNER, claim_owner, job_refusal
from codebolt_topo.wire.clock import NodeClock, SeenRequests
from codebolt_topo.wire.codec import targets_of
from codebolt_topo.wire.config import LaunchConfig, RuntimeConfig

if TYPE_CHECKING:
    from codebolt_topo.node.jobs.held import HeldJob
    from codebolt_topo.node.session import Session

__all__ = ["NodeCore"]

log = logging.getLogger(__name__)
_DRAIN_TIMEOUT = 5.0
_PEER_ALLOWED = frozenset(
    {"exec", "attach", "ack", "detach", "cancel", "signal", "eof", "notify", "info"}
)


class NodeCore:
    """Everything about this node that outlives a single connection."""

    def __init__(self, launch: LaunchConfig) -> None:
        self.launch = launch
        self.name = launch.node
        self.workspace = Path(launch.workspace)
        self.base_env = {
            **os.environ,
            **launch.env,
            "CODEBOLT_NODE": launch.node,
            "CODEBOLT_TOPOLOGY": launch.topology,
        }
        self.runtime = RuntimeConfig()
        self.gateway = ExecutionGateway(launch.node)
        self.context = NodeContext(
            name=launch.node,
            topology=launch.topology,
            workspace=self.workspace,
            execution_gateway=self.gateway,
            logger=logging.getLogger(f"codebolt_topo.node.{launch.node}"),
            state_dir=Path(launch.state_dir),
            job_env=self.base_env,
        )
        self.plugins = PluginHost(self.context)
        self.router = Router(launch.node, launch.tls)
        self.dialers = Dialers(self)
        self.keepers = LinkKeepers(launch.node, self.router)
        self.presence = Presence(launch.node)
        """Peers connected to this node now: a joined node's heartbeat (node/presence.py)."""
        self.jobs = JobTable(launch.node, lambda: self.runtime, self._job_started, self._job_ended)
        self.sessions: set[Session] = set()
        self._background: set[asyncio.Future[None]] = set()
        self.clock = NodeClock()
        """Told to every connection at its handshake; ``exec`` frames are stamped on it."""
        self.seen = SeenRequests()
        self.descriptors = DescriptorGauge()

    def refusal(self, principal: str, kind: str, msg: dict[str, Any]) -> tuple[str, str] | None:
        """(code, message) when ``principal`` may not send ``kind`` now, else None.

        An admitted ``exec``/``attach`` leaves with its ``owner`` stamped (see
        :mod:`~codebolt_topo.node.security.principals`).
        """
        if kind in ("exec", "attach"):
            problem = self._ownership(principal, msg)
            if problem:
                return "forbidden", problem
        if principal == ADMIN:
            return None
        if kind not in _PEER_ALLOWED:
            return "forbidden", f"node {self.name!r}: {principal!r} may not {kind}"
        reason = self.gateway.refusal()
        if reason is not None:
            return "gateway-inactive", reason
        if kind in ("exec", "attach"):
            veto = self.plugins.hook.codebolt_node_admit(
                node=self.context, principal=principal, request=msg
            )
            if veto is not None:
                return "forbidden", str(veto)
        return None

    def admission(self, msg: dict[str, Any], open_targets: int) -> tuple[str, str] | None:
        """(code, message) when an ``exec``/``attach`` its sender may send still cannot enter:
        too many targets for one request or for its connection (which has ``open_targets``
        open), or an ``exec`` frame that is not fresh on this node's clock (a replay)."""
        runtime = self.runtime
        problem = request_over_limit(
            self.name, runtime.limits, msg["id"], len(targets_of(msg)), open_targets
        )
        if problem is not None:
            return "over-limit", problem
        if msg["t"] == "exec":
            return self.clock.refusal(self.name, msg["id"], msg.get("issued"), runtime.request_ttl)
        return None

    def new_job_refusal(
        self, key: str, msg: dict[str, Any], connection: Usage
    ) -> tuple[str, str] | None:
        """(code, message) when request ``key`` may not start a job here now: past a limit of
        the node or of the ``connection``, short of descriptors, or already run within
        ``request_ttl`` (a job the table no longer holds). None admits it, and remembers
        ``key`` as run."""
        runtime = self.runtime
        limits = runtime.limits
        pipes = pipes_of(msg)
        usage = self.jobs.usage
        problem = job_over_limit(self.name, limits, pipes, usage, connection)
        if problem is None:  # 2 ends of each pipe and a pidfd, while it spawns
            reserve = limits.descriptor_reserve
            problem = self.descriptors.refusal(self.name, 2 * pipes + 1, reserve, usage.descriptors)
        if problem is not None:
            return "over-limit", problem
        if not self.seen.add(key, runtime.request_ttl):
            return "replayed", (
                f"node {self.name!r} already ran request {key!r} in the last "
                f"{runtime.request_ttl:g} s (request_ttl) and no longer holds it: not run again"
            )
        return None

    def _ownership(self, principal: str, msg: dict[str, Any]) -> str:
        upstream = self.runtime.upstream
        problem = claim_owner(
            msg, principal, self.name, admin=principal == ADMIN, upstream=upstream
        )
        if problem or self.name not in targets_of(msg):
            return problem
        key = msg.get("origin", msg["id"])
        held = self.jobs.get(key)
        return (
            ""
            if held is None
            else job_refusal(self.name, key, held.local.owner, msg[OWNER], upstream)
        )

    def _job_started(self, held: HeldJob) -> None:
        assert held.pid is not None
        self.call_hook("codebolt_node_job_started", request_id=held.key, pid=held.pid)

    def _job_ended(self, held: HeldJob) -> None:
        self.call_hook("codebolt_node_job_ended", request_id=held.key, exit=held.exit)

    def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call a notification hook; a failing plugin is logged, never fatal to the job."""
        try:
            getattr(self.plugins.hook, name)(node=self.context, **kwargs)
        except Exception:
            log.exception("plugin hook %s failed", name)

    async def configure(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Apply a pushed RuntimeConfig; stale generations are ignored. Returns the reply."""
        try:
            runtime = RuntimeConfig.model_validate(raw)
        except ValidationError as exc:
            return _error(
                "bad-request",
                self.name,
                f"invalid runtime config: {exc.error_count()} error(s): {exc.errors()[0]['msg']}",
            )
        if runtime.generation <= self.runtime.generation:
            log.info(
                "configure generation %d ignored (have %d)",
                runtime.generation,
                self.runtime.generation,
            )
            return {"t": "configured", "generation": self.runtime.generation}
        try:
            self.plugins.apply(runtime.plugins)
        except TopoError as exc:
            return _error("bad-request", self.name, str(exc))
        revoked = {
            p for p in self.runtime.accept if runtime.accept.get(p) != self.runtime.accept.get(p)
        }
        stale = self.router.update(runtime)
        self.runtime = runtime
        self.dialers.update(runtime.dial)
        self.keepers.update({n for n, p in runtime.peers.items() if p.keep and p.dial == "sender"})
        for link in stale:
            task = asyncio.ensure_future(link.close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for session in list(self.sessions):
            if session.principal in revoked:
                session.revoke()
        log.info(
            "configured generation %d: %d peers, %d routes, plugins %s",
            runtime.generation,
            len(runtime.peers),
            len(runtime.routes),
            self.plugins.enabled or "none",
        )
        return {"t": "configured", "generation": runtime.generation}

    def info(self, detail: bool = False) -> dict[str, Any]:
        """The ``info`` reply: cheap (counts only) unless ``detail`` asks for every job."""
        reply = {
            "t": "info",
            "node": self.name,
            "topology": self.launch.topology,
            "version": __version__,
            "pid": os.getpid(),
            "gateway": "active" if self.gateway.active else "inactive",
            "plugins": self.plugins.enabled,
            "capabilities": sorted({*self.runtime.capabilities, *detected_here().found}),
            "detected": sorted(detected_here().found),
            "peers": sorted(self.runtime.peers),
            "links": sorted(link.name for link in self.router.open_links()),
            "generation": self.runtime.generation,
            "jobs": self.jobs.running(),
            "clock": self.clock.header(),
            "job_states": self.jobs.summary(),
        }
        if detail:
            reply["job_list"] = self.jobs.describe()
        return reply

    async def close(self) -> None:
        """Stop: cancel local jobs and let their ``exit`` reach callers, close links, disable
        plugins. Connections are closed by the server afterwards."""
        self.jobs.cancel_all()
        await asyncio.gather(
            self.jobs.drain(_DRAIN_TIMEOUT), *(s.drain(_DRAIN_TIMEOUT) for s in list(self.sessions))
        )
        await self.dialers.close()
        await self.keepers.close()
        await self.router.close()
        self.plugins.close()


def _error(code: str, node: str, message: str) -> dict[str, Any]:
    return {"t": "error", "id": None, "node": None, "hop": node, "code": code, "message": message}
