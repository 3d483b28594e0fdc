"""Make a cloud-vm host able to run node daemons: a venv installed from our wheelhouse.

Layout under the node's ``remote_dir`` (relative to the login's home unless absolute)::

    envs/<key>/venv/        one venv per wheelhouse key (version + source hash), shared by nodes
    envs/<key>/.complete    written last: a host with it is bootstrapped (the warm path)
    nodes/<topology>-<node>-<random>/   one directory per node: launch.json, node.log, workspace

A cold bootstrap copies the wheels over SFTP, creates the venv (without pip: ensurepip alone
takes longer than the whole install) and installs with ``pip install --no-index --find-links``,
pip itself run from its wheel (the host needs no index, no internet, no pip); it happens in a
scratch directory renamed into place at the end, so an interrupted or concurrent bootstrap never
leaves a half-installed venv behind the name. A warm one is a single remote command. Venvs of
older keys stay until removed by hand: other topologies on the host may still use them.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh

import codebolt_topo
from codebolt_topo.errors import ProviderError
from codebolt_topo.providers.cloud_vm.connect import SshRoute, ssh_error
from codebolt_topo.providers.cloud_vm.wheelhouse import PROJECT, Wheelhouse

__all__ = ["Bootstrapper", "RemoteEnv", "run_checked"]

INSTALL_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class RemoteEnv:
    """A bootstrapped host: its absolute remote directory and the venv's interpreter."""

    remote_dir: str
    python: str
    cold: bool

    @property
    def nodes_dir(self) -> str:
        return f"{self.remote_dir}/nodes"


async def run_checked(
    route: SshRoute, command: str, *, input: str | None = None, timeout: float = 60.0
) -> str:
    """Run ``command`` on the target and return its stdout; a failure becomes ProviderError."""
    try:
        result = await route.target.run(command, input=input, check=False, timeout=timeout)
    except (OSError, asyncssh.Error, TimeoutError) as error:
        raise ssh_error(route.settings, error) from None
    if result.exit_status != 0:
        detail = str(result.stderr or result.stdout or "").strip() or f"exit {result.exit_status}"
        raise ProviderError(f"ssh {route.settings.host}: {detail}")
    return str(result.stdout)


class Bootstrapper:
    """Bootstraps hosts, once per host and wheelhouse key even when nodes start in parallel."""

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def ensure(
        self, route: SshRoute, wheels: Wheelhouse, step: Callable[[str], None] = lambda what: None
    ) -> RemoteEnv:
        """The host's venv for ``wheels``, installed first when the host has none; ``step`` is
        told each long stage (uploading, installing)."""
        loop_id = id(asyncio.get_running_loop())
        key = (loop_id, f"{route.settings.model_dump_json()}|{wheels.key}")
        async with self._locks.setdefault(key, asyncio.Lock()):
            return await self._ensure(route, wheels, step)

    async def _ensure(
        self, route: SshRoute, wheels: Wheelhouse, step: Callable[[str], None]
    ) -> RemoteEnv:
        settings = route.settings
        probe = (
            f"mkdir -p {shlex.quote(settings.remote_dir)} && cd {shlex.quote(settings.remote_dir)}"
            f" && pwd && {shlex.quote(settings.python)} -c "
            + shlex.quote(
                "import sys, sysconfig; print(sys.version_info[0], "
                "sys.version_info[1], sysconfig.get_platform())"
            )
            + f" && if test -f envs/{wheels.key}/.complete; then echo warm; else echo cold; fi"
        )
        lines = (await run_checked(route, probe)).split()
        remote_dir, major, minor, platform, status = lines[0], lines[1], lines[2], *lines[3:5]
        here = (str(sys.version_info.major), str(sys.version_info.minor), sysconfig.get_platform())
        if (major, minor, platform) != here:
            raise ProviderError(
                f"ssh {settings.host}: {settings.python} is Python {major}.{minor} on {platform}, "
                f"but the wheels are built here for Python {here[0]}.{here[1]} on {here[2]}; set "
                "ssh.python to a matching interpreter on the host"
            )
        env = RemoteEnv(
            remote_dir, f"{remote_dir}/envs/{wheels.key}/venv/bin/python", status == "cold"
        )
        if env.cold:
            await self._install(route, wheels, remote_dir, step)
        return env

    async def _install(
        self, route: SshRoute, wheels: Wheelhouse, remote_dir: str, step: Callable[[str], None]
    ) -> None:
        envs = f"{remote_dir}/envs"
        scratch = f"{envs}/.tmp-{wheels.key}-{secrets.token_hex(4)}"
        final = f"{envs}/{wheels.key}"
        size = sum(path.stat().st_size for path in wheels.wheels) / 1e6
        step(f"uploading {len(wheels.wheels)} wheels ({size:.1f} MB)")
        try:
            async with route.target.start_sftp_client() as sftp:
                await sftp.makedirs(f"{scratch}/wheels")
                await sftp.put([str(path) for path in wheels.wheels], f"{scratch}/wheels")
        except (OSError, asyncssh.Error) as error:
            await run_checked(route, f"rm -rf {shlex.quote(scratch)}")
            raise ssh_error(route.settings, error) from None
        q = shlex.quote
        python = route.settings.python
        pip = f"{scratch}/wheels/{wheels.pip}/pip"
        install = (
            f"{q(python)} -m venv --without-pip {q(scratch + '/venv')}"
            f" && {q(scratch + '/venv/bin/python')} {q(pip)} install --quiet --no-index"
            " --no-compile --disable-pip-version-check"
            f" --find-links {q(scratch + '/wheels')}"
            f" {PROJECT}=={codebolt_topo.__version__}"
            f" && rm -rf {q(scratch + '/wheels')} && touch {q(scratch + '/.complete')}"
            # Another bootstrap may have won the race: keep its venv, drop ours.
            f" && {{ mv -T {q(scratch)} {q(final)} 2>/dev/null || rm -rf {q(scratch)}; }}"
        )
        step("installing")
        try:
            await run_checked(route, install, timeout=INSTALL_TIMEOUT)
        except ProviderError:
            await run_checked(route, f"rm -rf {q(scratch)}")
            raise
