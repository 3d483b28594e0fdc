"""Jobs on local nodes cannot reach the topology's tokens (issue 12, finding 11).

Before, a job on ``c`` read ``.codebolt/<name>.state.json`` (same user) and with it every admin
and edge token: code on ``c`` could send work to ``a``. Each check below runs as a job on a
real local node applied through the engine, then the same fences are checked as a user without
root (a user namespace) and with Landlock alone (where the kernel refuses namespaces).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from local_topology import applied_topology

from codebolt_topo.node.security import landlock

pytestmark = pytest.mark.slow

CHAIN = """name: fenced
nodes: {a: {}, b: {}, c: {}}
edges: [a -> b -> c]
"""


def test_a_job_finds_no_token_of_its_topology(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(CHAIN)
    with applied_topology(path) as applied:
        state_dir = tmp_path / ".codebolt"
        assert b"admin_token" in (state_dir / "fenced.state.json").read_bytes()
        later = tmp_path / "made-after-apply.txt"
        later.write_text("visible\n")
        pids = applied.pids()
        probe = textwrap.dedent(f"""
            import os
            def read(path):
                try:
                    with open(path, "rb") as f:
                        return f.read()
                except OSError as e:
                    return e.strerror
            print("state", read({str(state_dir / "fenced.state.json")!r}))
            print("other-node", read({str(state_dir / "fenced/nodes/a/launch.json")!r}))
            print("own-config", read({str(state_dir / "fenced/nodes/c/launch.json")!r}))
            print("listing", sorted(os.listdir({str(state_dir)!r})))
            print("later", read({str(later)!r}))
            print("daemon-a-mem", read("/proc/{pids["a"]}/mem"))
            print("client-mem", read("/proc/{os.getpid()}/mem"))
            open("note.txt", "w").write("workspace is writable")
            print("workspace", read("note.txt"))
            print("umount", os.system("umount {state_dir} 2>/dev/null"))
        """)
        out = applied.run("c", [sys.executable, "-c", probe])["c"].stdout.decode()
        lines = dict(line.split(" ", 1) for line in out.splitlines())
        assert lines["state"] == "No such file or directory", out
        assert lines["other-node"] == "No such file or directory", out
        assert lines["own-config"] == "b''", out  # its own tokens read as an empty file
        assert lines["listing"] == "['fenced']", out  # only the way down to its own directory
        assert lines["later"] == "b'visible\\n'", out  # the rest of the machine as it is now
        assert lines["daemon-a-mem"] == "Permission denied", out
        assert lines["client-mem"] == "Permission denied", out  # the test process: a client
        assert lines["workspace"] == "b'workspace is writable'", out
        assert lines["umount"] != "0", out
        # The CLI side is untouched: the state is where it was.
        assert b"admin_token" in (state_dir / "fenced.state.json").read_bytes()


FENCE_PROBE = """
import os, sys
from pathlib import Path
from codebolt_topo.node.security import isolation
from codebolt_topo.node.security.isolation import Fence
root = Path(sys.argv[1])
fence = Fence(hidden=root / "state", kept=(root / "state/nodes/c",),
              blanked=(root / "state/nodes/c/launch.json",))
if sys.argv[2] == "landlock":
    isolation._landlock_fence(fence, isolation.landlock.abi_version())
else:
    print("how", isolation.isolate(fence))
def read(path):
    try:
        return open(path).read().strip()
    except OSError as e:
        return e.strerror
print("secret", read(root / "state/secret"))
print("kept", read(root / "state/nodes/c/file"))
print("beside", read(root / "beside/file"))
(root / "state/nodes/c/new").write_text("x")
print("kept-write", read(root / "state/nodes/c/new"))
(root / "beside/new").write_text("y")
print("beside-write", read(root / "beside/new"))
try:
    (root / "top").write_text("z")
    print("top-write", read(root / "top"))
except OSError as e:
    print("top-write", e.strerror)
"""


def _fence_tree(root: Path) -> None:
    for path, text in (
        ("state/secret", "token"),
        ("state/nodes/c/file", "mine"),
        ("state/nodes/c/launch.json", "own token"),
        ("beside/file", "public"),
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def _probe(root: Path, mode: str, user: int | None = None) -> dict[str, str]:
    command = [sys.executable, "-c", FENCE_PROBE, str(root), mode]
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:{user}", str(root.parent)], check=True)
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_the_fence_holds_for_a_user_without_root() -> None:
    # Under /tmp itself: pytest's own tmp dirs are private to root, untraversable for nobody.
    root = Path(tempfile.mkdtemp(prefix="codebolt-fence-")) / "fence"
    try:
        _fence_tree(root)
        seen = _probe(root, "isolate", user=65534)
    finally:
        shutil.rmtree(root.parent)
    assert seen["how"] == "mount namespace"
    assert seen["secret"] == "No such file or directory"
    assert (seen["kept"], seen["kept-write"]) == ("mine", "x")
    assert (seen["beside"], seen["beside-write"]) == ("public", "y")
    assert seen["top-write"] == "z"  # directories above the fence change as they please


@pytest.mark.skipif(not landlock.abi_version(), reason="the kernel has no Landlock")
def test_landlock_alone_fences_where_namespaces_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "fence"
    _fence_tree(root)
    seen = _probe(root, "landlock")
    assert seen["secret"] == "Permission denied"
    assert (seen["kept"], seen["kept-write"]) == ("mine", "x")
    assert (seen["beside"], seen["beside-write"]) == ("public", "y")
    # The documented cost: no new entry directly in a directory above the fence.
    assert seen["top-write"] == "Permission denied"
