"""The job process spawner: exit through a pidfd (or the thread fallback), stdin, no zombies."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from codebolt_topo.node.jobs.spawn import spawn


async def _spawn_capture(
    argv: list[str], tmp_path: Path, stdin: bytes | None = None
) -> tuple[int, bytes, int]:
    out_r, out_w = os.pipe()
    try:
        child = await spawn(
            argv,
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "X": "42"},
            stdout=out_w,
            stderr=out_w,
            with_stdin=stdin is not None,
        )
    finally:
        os.close(out_w)
    with os.fdopen(out_r, "rb") as reader:
        collected = asyncio.get_running_loop().run_in_executor(None, reader.read)
        if stdin is not None:  # more than the pipes hold: drain() must wait for the child
            assert child.stdin is not None
            child.stdin.write(stdin)
            await child.stdin.drain()
            child.stdin.close()
        code = await asyncio.wait_for(child.wait(), 10)
        output = await asyncio.wait_for(collected, 10)
    return code, output, child.pid


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "thread-fallback"])
def test_exit_code_env_cwd_and_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open on this platform")
    script = 'echo "$X $(pwd)"; exit 3'
    code, output, pid = asyncio.run(_spawn_capture(["sh", "-c", script], tmp_path))
    assert code == 3
    assert output.decode().split() == ["42", str(tmp_path)]
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)


def test_stdin_reaches_the_child_and_eof_ends_it(tmp_path: Path) -> None:
    code, output, _ = asyncio.run(_spawn_capture(["cat"], tmp_path, stdin=b"hello\n" * 50_000))
    assert code == 0
    assert output == b"hello\n" * 50_000


def test_without_stdin_the_child_reads_dev_null(tmp_path: Path) -> None:
    code, output, _ = asyncio.run(_spawn_capture(["sh", "-c", "wc -c"], tmp_path))
    assert (code, output.strip()) == (0, b"0")


def test_signal_exit_is_negative_and_waiters_share_it(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int | None]:
        child = await spawn(
            ["sleep", "30"],
            cwd=tmp_path,
            env=dict(os.environ),
            stdout=2,
            stderr=2,
            with_stdin=False,
        )
        assert os.getpgid(child.pid) == child.pid  # its own session and process group
        first = asyncio.ensure_future(child.wait())
        with pytest.raises(TimeoutError):  # a cancelled waiter does not lose the exit
            await asyncio.wait_for(child.wait(), 0.05)
        os.killpg(child.pid, signal.SIGKILL)
        return await first, await child.wait(), child.returncode

    assert asyncio.run(scenario()) == (-signal.SIGKILL, -signal.SIGKILL, -signal.SIGKILL)


def test_command_not_found_leaks_no_descriptor(tmp_path: Path) -> None:
    async def scenario() -> None:
        await spawn(["/nonexistent/cmd"], cwd=tmp_path, env={}, stdout=2, stderr=2, with_stdin=True)

    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        asyncio.run(scenario())
    assert len(os.listdir("/proc/self/fd")) == before
