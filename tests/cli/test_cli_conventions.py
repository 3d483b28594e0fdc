"""What users expect of any CLI, through the real command and without daemons: ``--version``,
shell completion, help without Python types, JSON errors with their fields, template options
after the subcommand, colour on terminals only, graph to stdout (issue 17, items 3-5 and 7)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import codebolt

from codebolt_topo import __version__
from codebolt_topo.cli.exec_command import parse_exec_args

TOPOLOGY = "name: conv\nnodes: {a: {}, b: {}}\nedges: [a -> b]\n"
BAD = "name: demo\nnodes:\n  a: {provder: local}\n  b: {port: 0}\n"
TEMPLATE = "name: tmpl\nnodes:\n{% for i in range(workers) %}\n  w{{ i }}: {}\n{% endfor %}\n"


def test_version() -> None:
    result = codebolt("--version", cwd=Path.cwd())
    assert result.returncode == 0
    assert result.stdout == f"codebolt {__version__}\n"


def test_shell_completion_is_switched_on(tmp_path: Path) -> None:
    script = codebolt("--show-completion", "bash", cwd=tmp_path)
    assert script.returncode == 0, script.stderr
    assert "_CODEBOLT_COMPLETE=complete_bash" in script.stdout
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    env = {"_CODEBOLT_COMPLETE": "complete_bash", "COMP_WORDS": "codebolt st", "COMP_CWORD": "1"}
    commands = codebolt(cwd=tmp_path, env=env)
    assert commands.stdout.split() == ["status", "state"]
    env.update(COMP_WORDS="codebolt describe ", COMP_CWORD="2")
    assert codebolt(cwd=tmp_path, env=env).stdout.split() == ["a", "b"]  # the file's nodes


def _every_command() -> list[list[str]]:
    from typer.main import get_command

    from codebolt_topo.cli.app import app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


def test_help_never_shows_python_types() -> None:
    paths = _every_command()
    assert ["jobs", "attach"] in paths
    assert ["describe"] in paths
    assert ["logs"] in paths
    code = (
        "import contextlib, io, sys\nfrom codebolt_topo.cli.main import main\n"
        f"for path in {paths!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        main([*path, '--help'])\n"
        "    print('=== ' + ' '.join(path)); print(out.getvalue())\n"
    )
    text = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    typed = re.findall(r"^=== (.*)$|(<(?:list|str|path|float|int|bool)[^>]*>)", text, re.M)
    leaks, current = [], ""
    for command, leak in typed:
        current = command or current
        if leak:
            leaks.append((current, leak))
    assert leaks == []
    assert "--var NAME=VALUE" in text.split("=== validate")[1]  # after the subcommand too


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--json"],
        ["plan", "--json"],
        ["status", "--json"],
        ["describe", "a", "--json"],
        ["graph", "--json"],
    ],
)
def test_json_errors_name_file_line_column_field_on_stdout(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "topology.yaml").write_text(BAD)
    result = codebolt(*args, cwd=tmp_path)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["exit_code"] == 1
    assert [(e["file"], e["line"], e["column"], e["field"]) for e in document["errors"]] == [
        ("topology.yaml", 3, 7, "nodes.a.provder"),
        ("topology.yaml", 4, 13, "nodes.b.port"),
    ]
    assert "did you mean 'provider'" in document["errors"][0]["message"]
    assert "error: topology.yaml:3:7: nodes.a.provder:" in result.stderr  # people read stderr


def test_json_error_of_a_missing_node_is_json(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    result = codebolt("describe", "zz", "--json", cwd=tmp_path)
    assert result.returncode == 1
    [entry] = json.loads(result.stdout)["errors"]
    assert entry["kind"] == "ConfigError"
    assert entry["file"] is None
    assert "no node 'zz'" in entry["message"]


def test_text_errors_stay_off_stdout(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(BAD)
    result = codebolt("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""


def test_validate_and_providers_as_json(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    valid = json.loads(codebolt("validate", "--json", cwd=tmp_path).stdout)
    assert valid == {
        "ok": True,
        "file": "topology.yaml",
        "topology": "conv",
        "nodes": 2,
        "edges": 1,
        "shape": None,
    }
    providers = json.loads(codebolt("providers", "--json", cwd=tmp_path).stdout)
    local = next(row for row in providers if row["name"] == "local")
    assert local["category"] == "local"
    assert "python" in local["capabilities"]


def test_template_options_after_the_subcommand(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("workers: 5\n")
    (tmp_path / "t.yaml.j2").write_text(TEMPLATE)
    after = codebolt("validate", "t.yaml.j2", "--var", "workers=3", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert "valid (3 nodes" in after.stdout
    before = codebolt("--var", "workers=2", "validate", "t.yaml.j2", cwd=tmp_path)
    assert "valid (2 nodes" in before.stdout
    from_file = codebolt("validate", "t.yaml.j2", "--vars-file", "site.yaml", cwd=tmp_path)
    assert "valid (5 nodes" in from_file.stdout
    # --var wins over a variables file wherever each is written
    mixed = codebolt(
        "--var", "workers=4", "validate", "t.yaml.j2", "--vars-file", "site.yaml", cwd=tmp_path
    )
    assert "valid (4 nodes" in mixed.stdout
    graph = codebolt("graph", "t.yaml.j2", "--json", "--var", "workers=2", cwd=tmp_path)
    assert [n["name"] for n in json.loads(graph.stdout)["nodes"]] == ["w0", "w1"]


@pytest.mark.parametrize("first", ["topology.yaml.j2", "t.yml.j2", "x.jinja", "a.yaml", "a.yml"])
def test_exec_and_sync_take_a_template_as_file(first: str) -> None:
    assert parse_exec_args([first, "w0", "--", "true"]) == (Path(first), ["w0", "--", "true"])


def test_exec_takes_a_command_ending_in_j2_for_a_command() -> None:
    assert parse_exec_args(["--", "render.j2"]) == (Path("topology.yaml"), ["--", "render.j2"])


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; returns what it showed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "codebolt_topo.cli.main", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, "TERM": "xterm", **env},
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
        return b"".join(chunks).decode()
    finally:
        os.close(controller)


def test_plan_symbols_and_errors_are_coloured_on_a_terminal_only(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    clean = {k: "" for k in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE")}
    shown = _on_a_terminal(["plan"], tmp_path, clean)
    assert "\x1b[32m+\x1b[0m" in shown  # a green + for each create
    piped = codebolt("plan", cwd=tmp_path, env=clean)
    assert "\x1b[" not in piped.stdout
    assert "    + a  (local) create" in piped.stdout
    no_colour = _on_a_terminal(["plan"], tmp_path, {**clean, "NO_COLOR": "1"})
    assert "\x1b[" not in no_colour
    (tmp_path / "topology.yaml").write_text(BAD)
    failed = _on_a_terminal(["validate"], tmp_path, clean)
    assert "\x1b[1;31merror:\x1b[0m topology.yaml:3:7" in failed


def test_graph_writes_to_stdout_and_files(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    text = codebolt("graph", "-o", "-", cwd=tmp_path)
    assert text.stdout.splitlines() == ["a", "`-- b"]
    to_file = codebolt("graph", "--format", "mermaid", "-o", "g.mmd", cwd=tmp_path)
    assert to_file.returncode == 0, to_file.stderr
    assert (tmp_path / "g.mmd").read_text().startswith("flowchart")
    if subprocess.run(["which", "dot"], capture_output=True, check=False).returncode != 0:
        pytest.skip("Graphviz's dot is not installed")
    svg = subprocess.run(
        [sys.executable, "-m", "codebolt_topo.cli.main", "graph", "--format", "svg", "-o", "-"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert svg.returncode == 0, svg.stderr
    assert svg.stdout.startswith(b"<?xml")
    assert b"</svg>" in svg.stdout
    assert not (tmp_path / "-").exists()
