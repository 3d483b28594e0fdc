"""CLI cold start and node daemon spawn to ready, wall time.

Run: ``python benchmarks/bench_cli.py [--repeat 15]``. Each command is a fresh process (what a
user or a script pays): ``codebolt --help``, ``codebolt validate`` and ``codebolt plan`` on a
10-node file (plan with nothing applied yet), and a node daemon from ``Popen`` to the
``{"port": ...}`` line on its ready pipe. Peer: the interpreter alone (``python -c pass``), the
floor every Python CLI sits on, printed as a ratio. It asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_ms, load_note, summary

from codebolt_topo.node.testing import Cluster

TEN = "name: ten\nnodes:\n" + "".join(f"  n{i}: {{}}\n" for i in range(10)) + \
    "edges:\n  - linear: [" + ", ".join(f"n{i}" for i in range(10)) + "]\n"
CODEBOLT = str(Path(sys.executable).with_name("codebolt"))
_CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(argv: list[str], cwd: Path, repeat: int) -> list[float]:
    """Wall time of each run; the CPU each run used goes to ``_CPU[label]`` (on shared, loaded
    cores the CPU time is the steadier figure: waiting for a core is not counted)."""
    samples, cpu = [], []
    for _ in range(repeat):
        used = _children_cpu()
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - used)
    _CPU[" ".join(argv[-2:])] = cpu
    return samples


def _spawn_to_ready(root: Path, repeat: int) -> list[float]:
    samples = []
    for index in range(repeat):
        cluster = Cluster(root / f"spawn-{index}", [], nodes=["a"])
        start = time.perf_counter()
        cluster.start()
        samples.append(time.perf_counter() - start)
        cluster.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"cold start, {load_note()}")
    with tempfile.TemporaryDirectory(prefix="codebolt-bench-cli-") as tmp:
        root = Path(tmp)
        (root / "topology.yaml").write_text(TEN)
        floor = _wall([sys.executable, "-c", "pass"], root, args.repeat)
        figures = {
            "codebolt --help": (_wall([CODEBOLT, "--help"], root, args.repeat), 0.250),
            "codebolt validate (10 nodes)": (
                _wall([CODEBOLT, "validate", "topology.yaml"], root, args.repeat), 0.400),
            "codebolt plan (10 nodes)": (
                _wall([CODEBOLT, "plan", "topology.yaml"], root, args.repeat), None),
            "node daemon spawn -> ready": (_spawn_to_ready(root, args.repeat), 0.300),
        }
    base = summary(floor)[0]
    cpu = iter(_CPU.values())
    print(f"wall time, median of {args.repeat} (p10-p90); ratio = figure / interpreter floor; "
          "then the CPU time (user+sys) of the process, median")
    print(f"  {'python -c pass (floor)':30s} {fmt_ms(floor)}         "
          f"CPU {summary(next(cpu))[0] * 1e3:6.1f} ms")
    for label, (samples, target) in figures.items():
        goal = f"   target <= {target * 1e3:.0f} ms" if target else ""
        spent = next(cpu, None) if "daemon" not in label else None
        used = f"   CPU {summary(spent)[0] * 1e3:6.1f} ms" if spent else ""
        print(f"  {label:30s} {fmt_ms(samples)} ({summary(samples)[0] / base:4.1f}x){used}{goal}")


if __name__ == "__main__":
    main()
