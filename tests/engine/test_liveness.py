"""Heartbeat verdicts and backoff schedules, with a fake clock."""

from __future__ import annotations

import pytest

from codebolt_topo.engine.backoff import Backoff, BackoffTable
from codebolt_topo.engine.liveness import Health, HealthTracker
from codebolt_topo.model.health import HeartbeatSpec, parse_duration


def test_defaults_follow_the_seed() -> None:
    spec = HeartbeatSpec()
    assert spec.interval == 30
    assert spec.suspect_deadline == 3 * 30 + 10
    assert spec.fail_deadline == spec.suspect_deadline + 60


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("2m", 120), (3, 3)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_deadlines_are_refused() -> None:
    with pytest.raises(ValueError, match="fail_after must be longer"):
        HeartbeatSpec(interval=1, timeout=1, suspect_after=5, fail_after=4)
    with pytest.raises(ValueError, match="at least one interval"):
        HeartbeatSpec(interval=10, timeout=5, suspect_after=3)


def test_missed_beats_go_suspect_then_failed_and_a_beat_heals() -> None:
    spec = HeartbeatSpec(interval=1, timeout=0.5)  # suspect after 3.5 s, failed after 5.5 s
    tracker = HealthTracker(default=spec)
    tracker.track("a", now=0)
    tracker.beat("a", now=1)
    assert tracker.verdicts(2)["a"] is Health.HEALTHY
    assert tracker.verdicts(60)["a"] is Health.HEALTHY  # never asked again: not its fault
    tracker.miss("a", "no answer within 0.5 s")
    assert tracker.verdicts(2.5)["a"] is Health.HEALTHY  # one miss is not a failure
    assert tracker.verdicts(4.5)["a"] is Health.SUSPECT
    assert tracker.verdicts(6.5)["a"] is Health.FAILED
    assert "no answer" in tracker.nodes["a"].reason
    tracker.beat("a", now=6.6)
    assert tracker.verdicts(6.7)["a"] is Health.HEALTHY


def test_a_vanished_process_fails_at_once() -> None:
    tracker = HealthTracker(default=HeartbeatSpec())
    tracker.track("a", now=0)
    tracker.gone("a", "process 12 is gone")
    assert tracker.verdicts(0.1)["a"] is Health.FAILED
    assert tracker.nodes["a"].reason == "process 12 is gone"


def test_beats_are_paced_by_the_interval() -> None:
    tracker = HealthTracker(default=HeartbeatSpec(interval=2, timeout=1))
    tracker.track("a", now=0)
    assert tracker.due("a", 0)
    tracker.attempt("a", 0)
    assert not tracker.due("a", 1.9)
    assert tracker.due("a", 2.0)


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=1, cap=5)
    assert [backoff.failed(0) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert not backoff.ready(4.9)
    assert backoff.ready(5)
    backoff.succeeded()
    assert backoff.ready(0)
    table = BackoffTable(base=1, cap=5)
    assert table.ready("unknown", 0)
    table["b"].failed(10)
    assert not table.ready("b", 10.5)
    assert table.ready("a", 10.5)
