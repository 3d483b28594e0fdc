"""Use case: progressive scaling (examples/progressive-scaling), run as its README section shows.

One file grown in steps: local (laptop, worker), then + a docker node, then + a cloud-vm node
over SSH (a real sshd on loopback stands in for the cloud host). Each plan shows only the new
node and an in-place update of the laptop; the nodes already running keep their processes; a job
streaming from the worker the whole time loses nothing and ends normally.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import codebolt, copy_example, ok, workspace
from sshd_keys import make_ssh_keys

from codebolt_topo.engine.operations import state_file_for

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow, pytest.mark.timeout(300)]

TICKER = 'i=0; while [ ! -e stop ]; do i=$((i+1)); echo "tick $i"; sleep 0.2; done; echo finished'


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A throwaway OpenSSH server on loopback for this user; yields cloud-vm ssh settings."""
    if not (Path(SSHD).exists() and shutil.which("ssh-keygen")):
        if os.environ.get("CODEBOLT_REQUIRE_SSH") == "1":
            pytest.fail(f"CODEBOLT_REQUIRE_SSH=1 but no OpenSSH server ({SSHD})")
        pytest.skip(f"OpenSSH server not installed ({SSHD})")
    root = tmp_path / "sshd"
    root.mkdir(mode=0o700)
    make_ssh_keys(root)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "sshd.conf").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {root / 'sshd.pid'}\nPermitRootLogin prohibit-password\n"
        "AllowTcpForwarding yes\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(root / "sshd.conf")], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        user = subprocess.run(
            ["id", "-un"], capture_output=True, text=True, check=True
        ).stdout.strip()
        yield {
            "host": "127.0.0.1",
            "port": str(port),
            "user": user,
            "identity_file": str(root / "id"),
            "host_key": " ".join((root / "host.pub").read_text().split()[:2]),
            "remote_dir": str(tmp_path / "remote"),
            "python": sys._base_executable,
        }
    finally:
        proc.terminate()
        proc.wait(10)


def _grow(folder: Path, step: str, ssh: dict[str, str] | None = None) -> str:
    """Copy ``step`` over topology.yaml (pointing its ssh: block at ``ssh``); return the plan."""
    text = (folder / step).read_text()
    if ssh is not None:
        block = "".join(
            f"      {key}: {value!r}\n" if key != "port" else f"      port: {value}\n"
            for key, value in ssh.items()
        )
        text = re.sub(r"(    ssh:\n)(?:      .*\n)+", lambda m: m[1] + block, text)
    (folder / "topology.yaml").write_text(text)
    return ok(codebolt("plan", cwd=folder))


def _handles(folder: Path) -> dict[str, str]:
    state = state_file_for(folder / "topology.yaml", "scaling").load()
    return {
        name: str(node.handle.get("pid") or node.handle.get("id"))
        for name, node in state.nodes.items()
    }


@pytest.mark.usefixtures("node_image")
def test_one_file_grows_local_then_docker_then_cloud_vm(
    tmp_path: Path, sshd: dict[str, str]
) -> None:
    folder = copy_example("progressive-scaling", tmp_path)
    ok(codebolt("apply", "--auto-approve", cwd=folder))
    job: subprocess.Popen[str] | None = None
    try:
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codebolt_topo.cli.main",
                "exec",
                "worker",
                "--",
                "sh",
                "-c",
                TICKER,
            ],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert job.stdout is not None
        assert job.stdout.readline() == "tick 1\n"
        before = _handles(folder)

        plan = _grow(folder, "step-2-docker.yaml")
        assert re.search(r"\+ builder +\(docker\) create", plan), plan
        assert re.search(r"~ laptop +\(local\) update in place\n +peers \+builder\n", plan), plan
        assert "Plan: 1 to create, 1 to update, 0 to replace, 0 to destroy." in plan
        ok(codebolt("apply", "--auto-approve", cwd=folder, timeout=300))
        assert (
            ok(codebolt("exec", "builder", "--", "sh", "-c", "echo on $CODEBOLT_NODE", cwd=folder))
            == "on builder\n"
        )

        plan = _grow(folder, "step-3-cloud-vm.yaml", sshd)
        assert re.search(r"\+ cloud +\(cloud-vm\) create", plan), plan
        assert re.search(r"~ laptop +\(local\) update in place\n +peers \+cloud\n", plan), plan
        assert "Plan: 1 to create, 1 to update, 0 to replace, 0 to destroy." in plan
        ok(codebolt("apply", "--auto-approve", cwd=folder, timeout=300))
        assert (
            ok(
                codebolt(
                    "exec",
                    "--requires",
                    "gpu",
                    "--",
                    "sh",
                    "-c",
                    "echo on $CODEBOLT_NODE",
                    cwd=folder,
                )
            )
            == "on cloud\n"
        )

        after = _handles(folder)
        assert {name: after[name] for name in before} == before  # nothing restarted
        (workspace(folder, "scaling", "worker") / "stop").touch()
        rest, errors = job.communicate(timeout=30)
        lines = ["tick 1", *rest.splitlines()]
        assert lines[-1] == "finished", errors
        assert lines[:-1] == [f"tick {n}" for n in range(1, len(lines))]
        assert job.returncode == 0, errors
    finally:
        if job is not None:
            if job.poll() is None:
                job.kill()
            job.communicate()
        ok(codebolt("destroy", "--auto-approve", cwd=folder, timeout=300))
