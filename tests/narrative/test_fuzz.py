"""Coverage-guided fuzzing of the pack and tar readers, for a bounded time in CI.

Each target (``fuzz/fuzz_pack.py``, ``fuzz/fuzz_tar.py``) runs under libFuzzer (atheris) from
the checked-in seed corpus for ``$CODEBOLT_FUZZ_SECONDS`` (default 20) seconds. libFuzzer
fails the run when an input raises anything but a refusal, runs longer than ``-timeout``
seconds, or takes the process past ``-rss_limit_mb``; the input is saved under the test's
temporary directory and its path printed. New inputs found go to a scratch corpus, not to the
checked-in one (``fuzz/make_seeds.py`` regenerates that).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has wheels for x86-64 Linux only")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FUZZ = Path(__file__).with_name("fuzz")
SECONDS = int(os.environ.get("CODEBOLT_FUZZ_SECONDS", "20"))


@pytest.mark.parametrize(("target", "seeds"), [("fuzz_pack.py", "pack"), ("fuzz_tar.py", "tar")])
def test_fuzz_target_finds_nothing(target: str, seeds: str, tmp_path: Path) -> None:
    scratch = tmp_path / "corpus"
    shutil.copytree(FUZZ / "corpus" / seeds, scratch)
    # Through a shell that forks: libFuzzer reads its memory from ru_maxrss, which Linux
    # carries across exec, so a fuzzer exec'd straight from this (large) process would start
    # at pytest's peak.
    done = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; status=$?; exit $status', sys.executable,
         str(FUZZ / target), f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=768",
         "-max_len=65536", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
         str(scratch)],
        cwd=FUZZ, capture_output=True, text=True, timeout=SECONDS + 240, check=False,
        env={**os.environ, "NARRATIVE_FUZZ_TMP": str(tmp_path)},
    )  # fmt: skip
    tail = "\n".join(done.stderr.splitlines()[-25:])
    assert done.returncode == 0, f"{target} found a problem:\n{tail}"
    assert "Done" in done.stderr, tail
