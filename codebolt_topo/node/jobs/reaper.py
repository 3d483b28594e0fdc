"""A job's processes live and die with the job: the node daemon as child subreaper.

Each job starts in a session of its own, and used to be killed as one process group. A group is
not a tree: ``timeout`` moves itself and its command to a new group, a shell's ``set -m`` gives
every pipeline one, and a fork bomb under ``timeout`` kept 255 of a sandbox's 256 pids after its
job was reported killed. So the daemon makes itself the *child subreaper* of its descendants
(:func:`~codebolt_topo.proctree.become_subreaper`): no process a job starts can leave the
daemon's subtree, a double fork included, and every orphan becomes a direct child of the daemon.

A job's processes are then, at any moment: the tree below its root, and the trees below the
daemon's orphaned children whose session is the job's. :meth:`JobReaper.kill` signals exactly
those, and with SIGKILL repeats until none is left (a bomb forks between two passes; a killed
process forks no more, so the passes converge). Orphans whose session names no running job are
strays: those of a job that ended are killed; one that left its session (``setsid``) cannot be
told apart, so it is kept while a job that started before it still runs (``ssh-agent`` under a
live job survives) and killed once none does. Dead orphans are collected, or they would fill the
pid table as zombies. A periodic sweep covers what no job's end does.

Direct children the daemon started itself are never touched: jobs' roots (collected by their
:class:`~codebolt_topo.node.jobs.spawn.JobProcess`), children in the daemon's own session
(snapshots) and those claimed with :func:`~codebolt_topo.proctree.claim_child` (a child topology's
daemons). Outside a daemon (the reaper not :meth:`enabled <JobReaper.enable>`, e.g. nodes run
inside a test process) only the job's tree and process group are signalled, and nothing is swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import OrderedDict

from codebolt_topo.proctree import ProcStat, become_subreaper, children, is_claimed, read_stat
from codebolt_topo.proctree import subtree as process_subtree

__all__ = ["SWEEP_INTERVAL", "JobReaper", "job_reaper"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 2.0
"""Seconds between sweeps for strays and zombies no job's end collected."""
_KILL_PASSES_BEFORE_YIELD = 4
_KILL_DEADLINE = 10.0
_ENDED_MEMORY = 4096


class JobReaper:
    """The processes of this daemon's jobs: signal a job's whole tree, sweep up strays."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._session = os.getsid(0)
        self._live: dict[int, int] = {}
        """Root pid -> start time of every running job."""
        self._ended: OrderedDict[int, None] = OrderedDict()
        """Sessions of jobs that ended (the newest few thousand)."""
        self.enabled = False
        self._sweeper: asyncio.TimerHandle | None = None

    def enable(self) -> bool:
        """Become the subreaper of this process's descendants and sweep periodically (call once,
        in the daemon's event loop). False when the kernel cannot, which leaves group kills."""
        if not become_subreaper():
            log.warning(
                "cannot become child subreaper: a job's processes that leave its "
                "process group survive the job"
            )
            return False
        self._pid, self._session, self.enabled = os.getpid(), os.getsid(0), True
        self._schedule()
        return True

    def disable(self) -> None:
        """Stop sweeping (the daemon is stopping)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def started(self, root: int) -> None:
        """Job ``root`` (a session leader: its pid is its session's id) started."""
        stat = read_stat(root)
        self._live[root] = stat.start if stat else 0

    def ended(self, root: int) -> None:
        """Job ``root`` ended (its root collected): what is left of it is a stray now."""
        self._live.pop(root, None)
        self._ended[root] = None
        while len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)

    def signal(self, root: int, sig: signal.Signals) -> int:
        """Send ``sig`` to every process of job ``root`` once; returns how many got it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root, sig)
        members = self._members(root)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return len(members)

    async def kill(self, root: int) -> None:
        """SIGKILL every process of job ``root`` until none is left (or a deadline passes, then
        the periodic sweep goes on with it)."""
        deadline = time.monotonic() + _KILL_DEADLINE
        while True:
            for _ in range(_KILL_PASSES_BEFORE_YIELD):
                killed = self.signal(root, signal.SIGKILL)
                self._collect_zombies()
                if not killed:
                    return
            if time.monotonic() > deadline:
                log.warning(
                    "job session %d: %d processes still alive after %.0f s of kills",
                    root,
                    killed,
                    _KILL_DEADLINE,
                )
                return
            await asyncio.sleep(0.001)  # let the killed exit (and re-parent their children)

    def sweep(self) -> int:
        """Collect dead orphans and kill strays (see the module doc); returns strays killed."""
        if not self.enabled:
            return 0
        killed = 0
        for stat in self._orphans():
            if stat.zombie:
                self._collect(stat.pid)
            elif self._stray(stat):
                for pid in process_subtree([stat.pid]):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                        killed += 1
        if killed:
            log.info("killed %d stray process(es) left by ended jobs", killed)
        return killed

    # -- internals ------------------------------------------------------------------------
    def _members(self, root: int) -> list[int]:
        """Live processes of job ``root``: the tree below the root while it runs, and below
        orphans of its session."""
        roots = [stat.pid for stat in self._orphans() if stat.session == root and not stat.zombie]
        root_stat = read_stat(root)  # only the job's own root: never a recycled pid
        if (
            root_stat is not None
            and not root_stat.zombie
            and self._live.get(root) == root_stat.start
        ):
            roots.append(root)
        members = []
        for pid in process_subtree(roots):
            stat = read_stat(pid)
            if stat is not None and not stat.zombie:
                members.append(pid)
        return members

    def _orphans(self) -> list[ProcStat]:
        """Direct children this daemon did not start itself (empty unless enabled)."""
        if not self.enabled:
            return []
        found = []
        for pid in children(self._pid):
            if pid in self._live:
                continue
            stat = read_stat(pid)
            if stat is None or stat.session == self._session or is_claimed(stat):
                continue
            found.append(stat)
        return found

    def _stray(self, stat: ProcStat) -> bool:
        if stat.session in self._live:
            return False
        if stat.session in self._ended:
            return True
        return not any(start <= stat.start for start in self._live.values())

    def _collect_zombies(self) -> None:
        for stat in self._orphans():
            if stat.zombie:
                self._collect(stat.pid)

    @staticmethod
    def _collect(pid: int) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def _schedule(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._tick)

    def _tick(self) -> None:
        try:
            self.sweep()
        except Exception:
            log.exception("sweeping strays failed")
        self._schedule()


_reaper: JobReaper | None = None


def job_reaper() -> JobReaper:
    """This process's reaper (subreaping is a property of the process, not of a node)."""
    global _reaper
    if _reaper is None:
        _reaper = JobReaper()
    return _reaper
