"""The state one node daemon shares across its connections.

:class:`NodeCore` holds the launch and runtime configuration, the ExecutionGateway and plugin
host, the router, and the jobs this node executes (:class:`~codebolt_topo.node.table.JobTable`,
which outlives every connection). It decides who may do what (``refusal``) and
answers ``info`` and ``configure``; sessions do the per-connection work.
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
from codebolt_topo.node.auth import ADMIN
from codebolt_topo.node.config import LaunchConfig, RuntimeConfig
from codebolt_topo.node.gateway import ExecutionGateway
from codebolt_topo.node.hooks import NodeContext
from codebolt_topo.node.plugins import PluginHost
from codebolt_topo.node.principals import OWNER, claim_owner, job_refusal
from codebolt_topo.node.protocol import targets_of
from codebolt_topo.node.router import Router
from codebolt_topo.node.table import JobTable

if TYPE_CHECKING:
    from codebolt_topo.node.jobs import HeldJob
    from codebolt_topo.node.session import Session

__all__ = ["NodeCore"]

log = logging.getLogger(__name__)
_DRAIN_TIMEOUT = 5.0
_PEER_ALLOWED = frozenset({"exec", "attach", "ack", "detach", "cancel", "signal", "eof",
                           "notify", "info"})


class NodeCore:
    """Everything about this node that outlives a single connection."""

    def __init__(self, launch: LaunchConfig) -> None:
        self.launch = launch
        self.name = launch.node
        self.workspace = Path(launch.workspace)
        self.base_env = {**os.environ, **launch.env, "CODEBOLT_NODE": launch.node,
                         "CODEBOLT_TOPOLOGY": launch.topology}
        self.runtime = RuntimeConfig()
        self.gateway = ExecutionGateway(launch.node)
        self.context = NodeContext(name=launch.node, topology=launch.topology,
                                   workspace=self.workspace, execution_gateway=self.gateway,
                                   logger=logging.getLogger(f"codebolt_topo.node.{launch.node}"),
                                   state_dir=Path(launch.state_dir), job_env=self.base_env)
        self.plugins = PluginHost(self.context)
        self.router = Router(launch.node)
        self.jobs = JobTable(launch.node, lambda: self.runtime, self._job_started,
                             self._job_ended)
        self.sessions: set[Session] = set()
        self._background: set[asyncio.Future[None]] = set()

    def refusal(self, principal: str, kind: str, msg: dict[str, Any]) -> tuple[str, str] | None:
        """(code, message) when ``principal`` may not send ``kind`` now, else None.

        An admitted ``exec``/``attach`` leaves with its ``owner`` stamped (see
        :mod:`~codebolt_topo.node.principals`).
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
            veto = self.plugins.hook.codebolt_node_admit(node=self.context, principal=principal,
                                                         request=msg)
            if veto is not None:
                return "forbidden", str(veto)
        return None

    def _ownership(self, principal: str, msg: dict[str, Any]) -> str:
        upstream = self.runtime.upstream
        problem = claim_owner(msg, principal, self.name, admin=principal == ADMIN,
                              upstream=upstream)
        if problem or self.name not in targets_of(msg):
            return problem
        key = msg.get("origin", msg["id"])
        held = self.jobs.get(key)
        return "" if held is None else job_refusal(self.name, key, held.local.owner,
                                                    msg[OWNER], upstream)

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
            return _error("bad-request", self.name, f"invalid runtime config: "
                          f"{exc.error_count()} error(s): {exc.errors()[0]['msg']}")
        if runtime.generation <= self.runtime.generation:
            log.info("configure generation %d ignored (have %d)", runtime.generation,
                     self.runtime.generation)
            return {"t": "configured", "generation": self.runtime.generation}
        try:
            self.plugins.apply(runtime.plugins)
        except TopoError as exc:
            return _error("bad-request", self.name, str(exc))
        revoked = {p for p in self.runtime.accept if runtime.accept.get(p) !=
                   self.runtime.accept.get(p)}
        stale = self.router.update(runtime)
        self.runtime = runtime
        for link in stale:
            task = asyncio.ensure_future(link.close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for session in list(self.sessions):
            if session.principal in revoked:
                session.revoke()
        log.info("configured generation %d: %d peers, %d routes, plugins %s", runtime.generation,
                 len(runtime.peers), len(runtime.routes), self.plugins.enabled or "none")
        return {"t": "configured", "generation": runtime.generation}

    def info(self, detail: bool = False) -> dict[str, Any]:
        """The ``info`` reply: cheap (counts only) unless ``detail`` asks for every job."""
        reply = {"t": "info", "node": self.name, "topology": self.launch.topology,
                "version": __version__, "pid": os.getpid(),
                "gateway": "active" if self.gateway.active else "inactive",
                "plugins": self.plugins.enabled,
                "capabilities": sorted({*self.runtime.capabilities, *detected_here().found}),
                "detected": sorted(detected_here().found),
                "peers": sorted(self.runtime.peers), "generation": self.runtime.generation,
                "jobs": self.jobs.running(), "job_states": self.jobs.summary()}
        if detail:
            reply["job_list"] = self.jobs.describe()
        return reply

    async def close(self) -> None:
        """Stop: cancel local jobs and let their ``exit`` reach callers, close links, disable
        plugins. Connections are closed by the server afterwards."""
        self.jobs.cancel_all()
        await asyncio.gather(self.jobs.drain(_DRAIN_TIMEOUT),
                             *(s.drain(_DRAIN_TIMEOUT) for s in list(self.sessions)))
        await self.router.close()
        self.plugins.close()


def _error(code: str, node: str, message: str) -> dict[str, Any]:
    return {"t": "error", "id": None, "node": None, "hop": node, "code": code,
            "message": message}
