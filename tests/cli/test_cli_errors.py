"""Bad input through the real ``codebolt`` command: one clear line each, nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import codebolt

from codebolt_topo.engine.statefile import StateFile


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return path


BAD_FILES = {
    "malformed-yaml": (
        "name: demo\nnodes:\n  a: {}\n  b: [\nedges: []\n",
        "topology.yaml:",
        "invalid YAML",
    ),
    "unknown-field": (
        "name: demo\nnodes:\n  a: {provder: local}\n",
        "topology.yaml:3:",
        "nodes.a.provder: unknown field 'provder' (did you mean 'provider'?)",
    ),
    "unknown-node-in-edge": (
        "name: demo\nnodes:\n  alpha: {}\n  beta: {}\nedges:\n  - alpha -> betta\n",
        "topology.yaml:6:",
        "'betta'",
    ),
    "wrong-declared-shape": (
        "name: demo\nshape: tree\nnodes: {a: {}, b: {}, c: {}, d: {}}\n"
        "edges: [a -> b, a -> c, b -> d, c -> d]\n",
        "topology.yaml:2:",
        "declared shape 'tree' but node 'd' has two parents",
    ),
    "port-clash": (
        "name: demo\nnodes:\n  a: {port: 4100}\n  b: {port: 4100}\nedges: [a -> b]\n",
        "topology.yaml:",
        "4100",
    ),
    "unknown-provider": (
        "name: demo\nnodes:\n  trainer: {provider: locl}\n",
        "topology.yaml:3:",
        "nodes.trainer.provider: unknown provider 'locl' (did you mean 'local'?)",
    ),
}


@pytest.mark.parametrize(
    ("case", "command"),
    [(case, "validate") for case in sorted(BAD_FILES)]
    + [("unknown-node-in-edge", "plan"), ("port-clash", "apply"), ("malformed-yaml", "apply")],
)
def test_bad_file_gives_one_clear_error_and_changes_nothing(
    case: str, command: str, tmp_path: Path
) -> None:
    text, location, message = BAD_FILES[case]
    _write(tmp_path, text)
    args = [command, "--auto-approve"] if command == "apply" else [command]
    result = codebolt(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert location in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".codebolt").exists()


def test_every_error_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "name: demo\nnodes:\n  a: {provder: local}\n  b: {port: 0}\nedges: [a - b, a -> zz]\n",
    )
    result = codebolt("validate", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "topology.yaml:" in line]
    fields = [line.split(": ")[2] for line in lines]
    assert fields == ["nodes.a.provder", "nodes.b.port", "edges[0]", "edges[1]"]
    assert "unknown node 'zz'" in lines[-1]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    _write(tmp_path, "name: demo\nnodes: {a: {provder: x}}\n")
    result = codebolt("--debug", "validate", cwd=tmp_path)
    assert "Traceback" in result.stderr


def test_missing_file_is_named(tmp_path: Path) -> None:
    result = codebolt("validate", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_apply_without_a_terminal_needs_auto_approve(tmp_path: Path) -> None:
    _write(tmp_path, "name: demo\nnodes: {a: {}}\n")
    result = codebolt("apply", cwd=tmp_path)
    assert result.returncode == 1
    assert "--auto-approve" in result.stderr
    state = StateFile(tmp_path / ".codebolt", "demo")
    assert state.load().nodes == {}
    assert not state.path.exists()


def test_plan_detailed_exitcode(tmp_path: Path) -> None:
    _write(tmp_path, "name: demo\nnodes: {a: {}}\n")
    result = codebolt("plan", "--detailed-exitcode", cwd=tmp_path)
    assert result.returncode == 2
    assert "+ a" in result.stdout
    assert codebolt("plan", cwd=tmp_path).returncode == 0


def test_concurrent_apply_fails_naming_the_lock_holder(tmp_path: Path) -> None:
    _write(tmp_path, "name: demo\nnodes: {a: {}}\n")
    state_file = StateFile(tmp_path / ".codebolt", "demo")
    with state_file.locked("apply"):
        result = codebolt("apply", "--auto-approve", cwd=tmp_path)
    assert result.returncode == 1
    assert "is locked by apply" in result.stderr
    assert "lock id" in result.stderr
    assert not state_file.path.exists()
