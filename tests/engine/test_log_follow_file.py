"""``codebolt logs -f`` of a local node follows its log file like ``tail -F``: across a
replacement (the file removed and a new one written at the same path, quicker than a poll) and
a truncation, without losing the old file's last lines or the new file's first ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

from codebolt_topo.engine.logs import POLL, _follow_file


async def _follow(path: Path, change: object, want: int) -> list[str]:
    seen: list[str] = []
    follower = _follow_file("b", path, None, None, True)

    async def read() -> None:
        async for line in follower:
            seen.append(line.text)
            if len(seen) == want:
                return

    task = asyncio.create_task(read())
    await asyncio.sleep(POLL * 2)  # the follower has read the old file to its end
    assert callable(change)
    change()
    await asyncio.wait_for(task, timeout=10)
    await follower.aclose()
    return seen


def test_a_replaced_log_is_read_from_its_top_even_when_longer_than_the_old_offset(
    tmp_path: Path,
) -> None:
    log = tmp_path / "node.log"
    log.write_text("old listening\n")

    def replace() -> None:
        with log.open("a") as old:
            old.write("old last words\n")  # written by the old daemon as it stops
        log.unlink()
        # The new daemon's log, longer than the old one, written within one poll: the freed
        # inode number is often handed straight to the new file.
        log.write_text("new listening\n" + "".join(f"new line {i}\n" for i in range(50)))

    seen = asyncio.run(_follow(log, replace, 53))
    assert seen[:3] == ["old listening", "old last words", "new listening"]
    assert seen[-1] == "new line 49"


def test_a_log_truncated_in_place_is_read_again_from_its_top(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("".join(f"first run {i}\n" for i in range(20)))

    def truncate() -> None:
        log.write_text("second run\n")  # same file, truncated and rewritten

    seen = asyncio.run(_follow(log, truncate, 21))
    assert seen[-1] == "second run"


def test_following_a_log_that_does_not_exist_yet_waits_for_it(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    seen = asyncio.run(_follow(log, lambda: log.write_text("at last\n"), 1))
    assert seen == ["at last"]
