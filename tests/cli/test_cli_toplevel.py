"""A top-level command runs in an application holding it alone (cli/toplevel.py): the table it is
built from names every command of the whole CLI, each answers ``--help`` exactly as the whole
CLI does, and ``validate`` / ``status`` import no other command's module (nor the engine that
applies: status only looks)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codebolt_topo.cli.toplevel import COMMANDS, app_for, command_named

MODULES = """
import json, sys
from codebolt_topo.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

HELP_BOTH_WAYS = """
import contextlib, io, json, sys
from codebolt_topo.cli.app import app
from codebolt_topo.cli.toplevel import COMMANDS, app_for

def help_of(application, name):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        application(args=[name, "--help"], prog_name="codebolt")
    return out.getvalue()

print(json.dumps({name: [help_of(app, name), help_of(app_for([name]), name)] for name in COMMANDS}))
"""

OTHER_COMMAND_MODULES = {
    "codebolt_topo.cli.app",
    "codebolt_topo.cli.lifecycle",
    "codebolt_topo.cli.describe_command",
    "codebolt_topo.cli.logs_command",
    "codebolt_topo.cli.watch_command",
    "codebolt_topo.cli.state_commands",
    "codebolt_topo.cli.work_commands",
    "codebolt_topo.cli.jobs_command",
    "codebolt_topo.cli.narrative",
}


def test_the_table_names_every_top_level_command_of_the_whole_cli() -> None:
    from codebolt_topo.cli.app import app

    whole = {}
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        reads = "var" in inspect.signature(info.callback).parameters
        whole[name] = (info.callback.__module__, info.callback.__qualname__, reads)
    whole.pop("serve", None)  # node serve lives in the node group
    table = {
        name: (f"codebolt_topo.cli.{module}", function, reads)
        for name, (module, function, reads) in COMMANDS.items()
    }
    assert whole == table


def test_each_command_answers_help_as_the_whole_cli_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELP_BOTH_WAYS],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    helps = json.loads(done.stdout)
    assert set(helps) == set(COMMANDS)
    for name, (whole, alone) in helps.items():
        assert whole.startswith(f"Usage: codebolt {name} "), whole
        assert alone == whole, name


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["validate", "t.yaml"], "validate"),
        (["--var", "validate=1", "--backend", "file", "status"], "status"),
        (["--var=x=1", "plan", "--json"], "plan"),
        (["--help"], None),
        (["jobs", "list"], "jobs"),
    ],
)
def test_the_command_is_the_first_word_past_the_global_options(
    args: list[str], named: str | None
) -> None:
    assert command_named(args) == named


def test_groups_help_and_unknown_words_get_the_whole_cli() -> None:
    from codebolt_topo.cli.app import app

    for args in (["--help"], ["jobs", "list"], ["validat"], ["--help", "validate"], []):
        assert app_for(args) is app
    assert app_for(["validate", "t.yaml"]) is not app


@pytest.mark.parametrize("command", ["validate", "status"])
def test_a_command_imports_no_other_command_module(command: str, tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text("name: one\nnodes: {a: {}}\n")
    done = subprocess.run(
        [sys.executable, "-c", MODULES, command, "topology.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    loaded = set(report["modules"])
    assert "codebolt_topo.cli.toplevel" in loaded
    assert OTHER_COMMAND_MODULES.isdisjoint(loaded), OTHER_COMMAND_MODULES & loaded
    assert "codebolt_topo.engine.runner" not in loaded  # status looks; it does not apply
