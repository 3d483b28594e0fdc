"""Capabilities as data: what a machine offers, detected the same way everywhere.

A capability is a short name (``gpu``, ``python``, ``python:3.11``, ``browser``, ``docker``).
Nodes declare some in the topology file; providers declare what every node they place has; and
:func:`detect` finds the rest on the machine it runs on (this one for the local provider, inside
the container or VM for others, where the node daemon calls it at start). Each probe is a cheap
lookup (a binary on PATH, a device file, a socket) so detection adds milliseconds, not seconds.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HINTS", "Detection", "detect", "detected_here", "missing"]


@dataclass(frozen=True, slots=True)
class Detection:
    """Capabilities found, and for the usual ones that were not, why not."""

    found: frozenset[str]
    absent: dict[str, str]


Which = Callable[[str], str | None]


def detect(which: Which = shutil.which, root: Path = Path("/")) -> Detection:
    """Probe this machine (``which`` and ``root`` are seams for tests)."""
    found = {"python", f"python:{sys.version_info.major}.{sys.version_info.minor}"}
    absent: dict[str, str] = {}
    driver = (root / "dev/nvidia0").exists() or (root / "proc/driver/nvidia").exists()
    if which("nvidia-smi") or driver:
        found.add("gpu")
        found.add("cuda")
    else:
        absent["gpu"] = "no NVIDIA driver found (no nvidia-smi, no /dev/nvidia0)"
    browsers = ("chromium", "chromium-browser", "google-chrome", "firefox")
    if any(which(name) for name in browsers):
        found.add("browser")
    else:
        absent["browser"] = f"no browser on PATH ({', '.join(browsers)})"
    if (root / "var/run/docker.sock").exists() or os.environ.get("DOCKER_HOST"):
        found.add("docker")
    else:
        absent["docker"] = "no Docker Engine socket (/var/run/docker.sock) and no DOCKER_HOST"
    return Detection(found=frozenset(found), absent=absent)


@functools.cache
def detected_here() -> Detection:
    """:func:`detect` on the machine (or container, or VM) this process runs on, probed once: a
    node daemon reports it so that routing knows what the node really has, not only what was
    declared, and the local provider offers it for the nodes it starts here."""
    return detect()


#: What to suggest when a required capability is missing.
HINTS = {
    "gpu": "place the node on a GPU machine: provider: docker with gpus on a GPU host, "
    "cloud-vm on a GPU VM, or hybrid with a GPU provider in its list",
    "cuda": "as for gpu",
    "browser": "install chromium in the node's image or machine",
    "docker": "run the node where a Docker Engine is reachable",
}


def missing(required: Iterable[str], offered: Iterable[str]) -> list[str]:
    """Required capabilities not offered. ``python:3`` is met by ``python:3.11``."""
    have = set(offered)
    lacking = []
    for need in required:
        if need in have or any(cap.startswith(need + ".") for cap in have):
            continue
        lacking.append(need)
    return lacking
