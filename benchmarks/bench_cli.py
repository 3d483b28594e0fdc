"""The CLI as a fresh process (what a user or a script pays), next to its peers.

Run: ``python benchmarks/bench_cli.py [--repeat 15]``. Each figure is one fresh process per
sample, wall time, median with its spread, and the CPU it used:

* ``codebolt --help``; ``validate`` and ``plan`` of a 10-node chain (nothing applied); then the
  chain applied on the local provider: ``status`` of its 10 running nodes, cold (an option,
  ``--interval 1``, keeps it off the broker) and through the warm broker (off a terminal);
* ``codebolt exec FILE NODE -- true`` direct (n0, the entry) and through 3 hops (n3): cold
  (``--no-broker``: the whole CLI, the topology validated, a connection opened) and through the
  warm exec broker (cli/broker_client.py); peers: ``ssh host true`` fresh, ``ssh -J`` through 3
  jumps, and ssh's ControlMaster (the broker's counterpart) on a throwaway sshd
  (``sshpeer.py``);
* a node daemon from ``Popen`` to the ``{"port": ...}`` line on its ready pipe.

Every ``codebolt`` runs as ``pip install .`` lays it out, not as this checkout's editable
install: a throwaway virtual environment whose ``site-packages`` lists the checkout and this
environment's packages as plain directories, and the ``codebolt`` script pip installed here
(``bin/codebolt``, with pip's interpreter line). The editable
install's import hook (setuptools' finder, which imports pathlib, re and fnmatch at start-up)
costs every process of a developer's checkout some 15 ms that no user pays.

Peers of everything: the interpreter alone (``python -c pass``), and the interpreter running
what the launcher pip writes for an entry point runs before ``main`` (``import re``), which
``bin/codebolt`` does without. ``--against DIR`` runs the
commands of another checkout's ``codebolt_topo`` too (``PYTHONPATH=DIR``), sample by sample
interleaved with this one, so a before/after comparison shares the machine's load.

The children run with a bytecode cache of their own (``PYTHONPYCACHEPREFIX`` in a temporary
directory, filled by a first run): an installed package has its ``.pyc`` files, and a shell
with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module of the project on every
run (50 ms of ``validate``). It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_ms, load_note, summary
from sshpeer import ssh_available, ssh_peers

from codebolt_topo.engine.operations import apply_topology, destroy_topology
from codebolt_topo.testing import Cluster

TEN = (
    "name: ten\nnodes:\n"
    + "".join(f"  n{i}: {{}}\n" for i in range(10))
    + "edges:\n  - linear: ["
    + ", ".join(f"n{i}" for i in range(10))
    + "]\n"
)
CODEBOLT = str(Path(sys.executable).with_name("codebolt"))
"""The ``codebolt`` script pip installed in this environment (copied into the installed layout)."""
Figure = tuple[list[float], list[float]]  # wall, CPU per sample


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def _fresh(argv: list[str], cwd: Path, repeat: int, env: dict[str, str] | None) -> Figure:
    """Wall and CPU time of ``repeat`` fresh runs, after one that fills the bytecode cache (on
    shared, loaded cores the CPU time is the steadier figure: waiting for a core is not
    counted)."""
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)
    walls, cpus = [], []
    for _ in range(repeat):
        used = _children_cpu()
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - used)
    return walls, cpus


def _interleaved(
    argv: list[str], cwd: Path, repeat: int, envs: tuple[dict[str, str], dict[str, str]]
) -> tuple[Figure, Figure]:
    """:func:`_fresh` of ``argv`` under two environments, one sample of each in turn."""
    first: Figure = ([], [])
    second: Figure = ([], [])
    for env in envs:
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)
    time.sleep(2)  # a broker the first run started (each checkout has its own) is up by now
    for _ in range(repeat):
        for env, (walls, cpus) in zip(envs, (first, second), strict=True):
            used = _children_cpu()
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)
            walls.append(time.perf_counter() - start)
            cpus.append(_children_cpu() - used)
    return first, second


def _installed(root: Path) -> tuple[str, str]:
    """``codebolt`` and ``python`` of a throwaway environment laid out as ``pip install .`` lays
    it out (see the module docstring)."""
    venv = root / "installed"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    checkout = Path(__file__).resolve().parent.parent
    packages = [entry for entry in sys.path if entry.endswith("site-packages")]
    (site / "codebolt-bench.pth").write_text("\n".join([str(checkout), *packages]) + "\n")
    python = venv / "bin" / "python"
    script = Path(CODEBOLT).read_text().splitlines(keepends=True)
    script[0] = f"#!{python}\n"  # the rest is what pip wrote
    codebolt = venv / "bin" / "codebolt"
    codebolt.write_text("".join(script))
    codebolt.chmod(0o755)
    return str(codebolt), str(python)


def _warm_broker(file: Path) -> None:
    """Start ``file``'s broker (as ``codebolt apply`` does) and wait until it listens, so that
    no sample of a warm figure takes the full path while it starts."""
    from codebolt_topo.cli.broker_client import broker_socket, warm_broker

    warm_broker(str(file))
    deadline = time.monotonic() + 60
    while not Path(broker_socket(str(file))).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the broker did not start")
        time.sleep(0.05)


def _spawn_to_ready(root: Path, repeat: int) -> Figure:
    walls = []
    for index in range(repeat):
        cluster = Cluster(root / f"spawn-{index}", [], nodes=["a"])
        start = time.perf_counter()
        cluster.start()
        walls.append(time.perf_counter() - start)
        cluster.stop()
    return walls, []


def _ssh_figures(repeat: int) -> dict[str, Figure]:
    with ssh_peers(4) as peers:
        figures = {
            "ssh host true (fresh)": _fresh(peers.proxyjump(0, ["true"]), Path("/"), repeat, None),
            "ssh -J 3 jumps true (fresh)": _fresh(
                peers.proxyjump(3, ["true"]), Path("/"), max(3, repeat // 3), None
            ),
        }
        for hops in (0, 3):
            figures[f"ssh ControlMaster, {hops} jumps"] = _fresh(
                peers.persistent(hops, ["true"]), Path("/"), repeat, {}
            )
            stop = peers.persistent(hops, [])
            stop[-1:-1] = ["-O", "exit"]
            subprocess.run(stop, capture_output=True)
    return figures


def _print(label: str, figure: Figure, floor: float, target: float | None) -> None:
    walls, cpus = figure
    cpu = f"   CPU {summary(cpus)[0] * 1e3:6.1f} ms" if cpus else " " * 16
    goal = f"   target <= {target * 1e3:.0f} ms" if target else ""
    ratio = summary(walls)[0] / floor
    print(f"  {label:48s} {fmt_ms(walls)} ({ratio:5.1f}x){cpu}{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--against", type=Path, help="another checkout, measured interleaved")
    args = parser.parse_args()
    repeat = args.repeat
    print(f"CLI as a fresh process, {load_note()}")
    figures: dict[str, tuple[Figure, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-cli-") as tmp:
        root = Path(tmp)
        env = _env(root / "pycache")
        (root / "topology.yaml").write_text(TEN)

        other = {**env, "PYTHONPATH": str(args.against)} if args.against else None
        codebolt, python = _installed(root)

        def add(label: str, argv: list[str], target: float | None) -> None:
            if other is None or argv[0] != codebolt:
                figures[label] = (_fresh(argv, root, repeat, env), target)
                return
            ours, theirs = _interleaved(argv, root, repeat, (env, other))
            figures[label] = (ours, target)
            figures[f"{label}, --against"] = (theirs, None)

        add("python -c pass (floor)", [python, "-c", "pass"], None)
        add("python -c 'import re' (an entry point's launcher)", [python, "-c", "import re"], None)
        add("codebolt --help", [codebolt, "--help"], 0.100)
        add("codebolt validate (10 nodes)", [codebolt, "validate", "topology.yaml"], 0.150)
        add("codebolt plan (10 nodes)", [codebolt, "plan", "topology.yaml"], None)
        apply_topology(root / "topology.yaml")
        try:
            _warm_broker(root / "topology.yaml")
            status = [codebolt, "status", "topology.yaml"]
            add("codebolt status (10 running), cold", [*status, "--interval", "1"], 0.150)
            add("codebolt status (10 running), warm broker", status, 0.150)

            def exec_argv(node: str, cold: bool) -> list[str]:
                broker = ["--no-broker"] if cold else []
                return [codebolt, "exec", "topology.yaml", node, *broker, "--", "true"]

            add("codebolt exec n0 true, cold", exec_argv("n0", True), 0.100)
            add("codebolt exec n3 true (3 hops), cold", exec_argv("n3", True), 0.110)
            add("codebolt exec n0 true, warm broker", exec_argv("n0", False), 0.015)
            add("codebolt exec n3 true, warm broker", exec_argv("n3", False), 0.015)
        finally:
            destroy_topology(root / "topology.yaml")
        figures["node daemon spawn -> ready"] = (_spawn_to_ready(root, repeat), 0.300)
    if ssh_available():
        for label, figure in _ssh_figures(repeat).items():
            figures[label] = (figure, None)
    else:
        print("  (ssh peers skipped: apt-get install openssh-server)")
    floor = summary(figures["python -c pass (floor)"][0][0])[0]
    print(
        f"wall time, median of {repeat} (p10-p90); (ratio to the interpreter floor); then the CPU "
        f"time (user+sys) of the process, median; load now {os.getloadavg()[0]:.2f}"
    )
    for label, (figure, target) in figures.items():
        _print(label, figure, floor, target)
    ratios = [
        ("codebolt exec n0 true, warm broker", "ssh ControlMaster, 0 jumps"),
        ("codebolt exec n3 true, warm broker", "ssh ControlMaster, 3 jumps"),
        ("codebolt exec n0 true, cold", "ssh host true (fresh)"),
        ("codebolt exec n3 true (3 hops), cold", "ssh -J 3 jumps true (fresh)"),
    ]
    for ours, peer in ratios:
        if peer in figures:
            mine, theirs = summary(figures[ours][0][0])[0], summary(figures[peer][0][0])[0]
            print(f"  {ours} / {peer}: {mine / theirs:.2f}")


if __name__ == "__main__":
    main()
