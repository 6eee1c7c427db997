"""The gathering episode rules on scripted count sequences.

Each test feeds a zone's count over time, as the pipeline does once per analysed frame, and
checks the events an operator would receive: flapping, dropouts, sudden rises, dispersal,
escalation, and a sudden and a sustained gathering sharing one episode.
"""

from __future__ import annotations

import random

import pytest

from alerting.events import Severity
from camera_adapters.zone_spec import (
    GatheringThresholds,
    SeverityLevels,
    SeverityStep,
    SuddenRise,
)
from pipeline.gathering import GatheringMonitor, Phase, RuleEvent


def feed(
    monitor: GatheringMonitor,
    counts: list[int],
    step: float = 1.0,
    densities: list[float | None] | None = None,
    start: float = 0.0,
) -> list[tuple[int, RuleEvent]]:
    """(sample index, event) for every event raised."""
    out = []
    for i, count in enumerate(counts):
        density = densities[i] if densities else None
        out += [(i, e) for e in monitor.update(start + i * step, count, density)]
    return out


def kinds(events: list[tuple[int, RuleEvent]]) -> list[tuple[str, int]]:
    return [(e.kind, i) for i, e in events]


def rules(**changes: object) -> GatheringThresholds:
    return GatheringThresholds(**changes)  # type: ignore[arg-type]


def assert_well_formed(events: list[tuple[int, RuleEvent]]) -> None:
    """Per episode: one started first, escalations strictly up, at most one ended, last."""
    by_episode: dict[str, list[RuleEvent]] = {}
    for _, event in events:
        by_episode.setdefault(event.episode_id, []).append(event)
    for episode in by_episode.values():
        assert episode[0].kind == "started"
        assert [e.kind for e in episode].count("started") == 1
        assert [e.sequence for e in episode] == list(range(1, len(episode) + 1))
        escalations = [e.severity.rank for e in episode if e.kind == "escalated"]
        assert escalations == sorted(set(escalations))
        assert all(rank > episode[0].severity.rank for rank in escalations)
        ended = [e for e in episode if e.kind == "ended"]
        assert len(ended) <= 1 and (not ended or episode[-1].kind == "ended")


# -- sustained: dwell, misses, hysteresis -----------------------------------------------


def test_dwell_then_dispersal_is_one_episode() -> None:
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=4, clear_after_s=3))
    events = feed(monitor, [0, 5, 6, 7, 5, 6, 6, 6, 2, 1, 1, 1, 0])
    # Gathered from sample 1, so the dwell of 4 s passes at sample 5; below the exit bound
    # (4) from sample 8, so the 3 s hold passes at sample 11.
    assert kinds(events) == [("started", 5), ("ended", 11)]
    started, ended = events[0][1], events[1][1]
    assert started.episode_id == ended.episode_id
    assert started.episode_started_at == 1.0 and ended.ended_at == 11.0
    assert started.severity is Severity.NOTICE and started.rule == "sustained"
    assert ended.peak_count == 6  # the median of three: the single 7 is not the peak
    assert monitor.phase is Phase.IDLE


def test_below_the_dwell_time_is_no_gathering() -> None:
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=10))
    assert feed(monitor, [6] * 10 + [0] * 30) == []


def test_missed_detections_do_not_reset_the_dwell() -> None:
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=10, min_fraction=0.8))
    events = feed(monitor, [6, 6, 2, 6, 6, 6, 6, 3, 6, 6, 6, 6])
    assert kinds(events) == [("started", 10)]


def test_too_many_misses_is_no_gathering() -> None:
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=10, min_fraction=0.8))
    assert feed(monitor, [6, 0] * 20) == []


def test_a_count_hovering_at_the_limit_raises_one_episode_not_a_flood() -> None:
    # ANCHORS.md: 21 identical alerts in ~15 s from a count hovering at the limit. Here the
    # count flaps around 20 at 2 samples/s for five minutes.
    monitor = GatheringMonitor(rules(min_people=20, min_duration_s=10, clear_after_s=15))
    rng = random.Random(7)
    counts = [rng.choice([18, 19, 20, 21, 22]) for _ in range(600)] + [3] * 40
    events = feed(monitor, counts, step=0.5)
    assert [e.kind for _, e in events] == ["started", "ended"]


def test_flapping_between_threshold_and_exit_bound_does_not_end_the_episode() -> None:
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=3, clear_after_s=5))
    events = feed(monitor, [5, 5, 5, 5] + [4, 5] * 20 + [0] * 6)
    assert kinds(events) == [("started", 3), ("ended", 49)]


def test_short_dropouts_during_an_episode_do_not_end_it() -> None:
    monitor = GatheringMonitor(rules(min_people=10, min_duration_s=5, clear_after_s=5))
    counts = [12] * 10 + [0, 0, 12, 12, 0, 0, 0, 12] + [12] * 10 + [0] * 8
    events = feed(monitor, counts)
    assert kinds(events) == [("started", 5), ("ended", 33)]


def test_a_new_gathering_after_dispersal_is_a_new_episode() -> None:
    monitor = GatheringMonitor(rules(min_people=2, min_duration_s=1, clear_after_s=1))
    events = feed(monitor, [2, 2, 0, 0, 2, 2, 0, 0])
    assert [k for k, _ in kinds(events)] == ["started", "ended", "started", "ended"]
    assert events[0][1].episode_id != events[2][1].episode_id
    assert_well_formed(events)


def test_a_stalled_stream_does_not_complete_the_dwell() -> None:
    # Two samples 60 s apart (the camera stalled in between) are no evidence of 30 s of
    # gathering; the dwell completes only once enough samples came after the stall.
    monitor = GatheringMonitor(rules(min_people=5, min_duration_s=30))
    events = feed(monitor, [6, 6, 6], step=1.0)
    events += [(0, e) for e in monitor.update(63.0, 6)]
    assert events == []
    later = [e for t in range(64, 100) for e in monitor.update(float(t), 6)]
    assert [e.kind for e in later] == ["started"]
    assert later[0].at >= 63.0 + 0.8 * 30 - 1


def test_exit_people_sets_the_lower_bound() -> None:
    monitor = GatheringMonitor(
        rules(min_people=10, exit_people=5, min_duration_s=2, clear_after_s=2)
    )
    events = feed(monitor, [10] * 5 + [6] * 20 + [4] * 4)
    assert kinds(events) == [("started", 2), ("ended", 27)]


# -- sudden rises -----------------------------------------------------------------------


def sudden(**changes: object) -> GatheringThresholds:
    spec = {"rise_people": 15, "within_s": 20, "hold_s": 3} | changes
    return rules(min_people=20, min_duration_s=60, clear_after_s=10, sudden=SuddenRise(**spec))


def test_a_sudden_rise_is_raised_before_the_dwell_passes() -> None:
    monitor = GatheringMonitor(sudden())
    counts = [4] * 30 + [12, 25, 30, 31, 32, 30, 31, 33, 30, 32]
    events = feed(monitor, counts)
    assert len(events) == 1
    index, started = events[0]
    assert started.kind == "started" and started.rule == "sudden"
    assert index < 30 + 10  # within seconds of the rise, long before the 60 s dwell
    assert started.severity is Severity.WARNING  # a sudden gathering is at least a warning
    assert started.count_rise is not None and started.count_rise >= 15
    assert "rose by" in started.reason


def test_a_slow_build_up_is_not_sudden() -> None:
    monitor = GatheringMonitor(sudden())
    counts = [min(4 + i // 4, 30) for i in range(200)]  # +1 person every 4 s
    events = feed(monitor, counts)
    assert [(e.kind, e.rule) for _, e in events] == [("started", "sustained")]


def test_a_dropout_in_the_baseline_does_not_fake_a_rise() -> None:
    # The detector misses everyone for two frames (e.g. a bus passing): the count returns
    # to its level, which is not a rise.
    monitor = GatheringMonitor(sudden(hold_s=0))
    counts = [22] * 10 + [0, 0] + [22] * 10
    assert [e.rule for _, e in feed(monitor, counts)] == []


def test_people_walking_through_are_not_a_sudden_gathering() -> None:
    # A train unloads: 25 people cross the zone within 3 s and are gone.
    monitor = GatheringMonitor(sudden(hold_s=5))
    counts = [3] * 20 + [10, 25, 26, 24, 9, 3] + [3] * 20
    assert feed(monitor, counts) == []


def test_sudden_then_sustained_is_one_episode() -> None:
    monitor = GatheringMonitor(sudden())
    counts = [3] * 25 + [30] * 90 + [2] * 12
    events = feed(monitor, counts)
    assert [(e.kind, e.rule) for _, e in events] == [("started", "sudden"), ("ended", "sudden")]
    started, ended = events[0][1], events[1][1]
    assert started.episode_id == ended.episode_id
    assert started.rules == ("sudden",)
    # By the end the dwell had confirmed it too: one case, both rules recorded.
    assert ended.rules == ("sudden", "sustained")


def test_a_sudden_rise_inside_an_open_episode_escalates_it_once() -> None:
    monitor = GatheringMonitor(sudden())
    counts = [22] * 70 + [39] * 15 + [22] * 10 + [39] * 15
    events = feed(monitor, counts)
    assert [(e.kind, e.rule, e.severity) for _, e in events] == [
        ("started", "sustained", Severity.NOTICE),
        ("escalated", "sudden", Severity.WARNING),
    ]
    assert_well_formed(events)


def test_returning_people_after_a_dispersal_are_not_sudden_during_the_cooldown() -> None:
    monitor = GatheringMonitor(sudden(cooldown_s=60))
    counts = [3] * 25 + [30] * 10 + [0] * 12 + [30] * 10
    events = feed(monitor, counts)
    assert [(e.kind, e.rule) for _, e in events] == [("started", "sudden"), ("ended", "sudden")]
    # After the cooldown the same rise is sudden again.
    later = feed(monitor, [0] * 60 + [30] * 10, start=57.0)
    assert [(e.kind, e.rule) for _, e in later] == [("started", "sudden")]


# -- severity and escalation --------------------------------------------------------------


def test_escalates_through_each_level_once() -> None:
    thresholds = rules(min_people=10, min_duration_s=5, clear_after_s=5, escalate_after_s=3)
    assert thresholds.level_people() == (20, 50)
    monitor = GatheringMonitor(thresholds)
    counts = [12] * 10 + [25] * 10 + [18, 25] * 10 + [60] * 10 + [25] * 10 + [60] * 5 + [0] * 7
    events = feed(monitor, counts)
    assert [(e.kind, e.severity) for _, e in events] == [
        ("started", Severity.NOTICE),
        ("escalated", Severity.WARNING),
        ("escalated", Severity.CRITICAL),
        ("ended", Severity.CRITICAL),
    ]
    assert events[1][1].reason.startswith("25 people ≥ 20")
    assert_well_formed(events)


def test_a_one_frame_spike_does_not_escalate() -> None:
    monitor = GatheringMonitor(rules(min_people=10, min_duration_s=5, escalate_after_s=3))
    events = feed(monitor, [12] * 10 + [80] + [12] * 10)
    assert [e.kind for _, e in events] == ["started"]


def test_a_jump_straight_to_critical_is_one_escalation() -> None:
    monitor = GatheringMonitor(rules(min_people=10, min_duration_s=5, escalate_after_s=2))
    events = feed(monitor, [12] * 8 + [70] * 8)
    assert [(e.kind, e.severity) for _, e in events] == [
        ("started", Severity.NOTICE),
        ("escalated", Severity.CRITICAL),
    ]


def test_a_crowd_already_large_when_confirmed_starts_at_its_level() -> None:
    monitor = GatheringMonitor(rules(min_people=20, min_duration_s=10, escalate_after_s=5))
    events = feed(monitor, [110] * 12)
    assert [(e.kind, e.severity) for _, e in events] == [("started", Severity.CRITICAL)]


def test_density_levels_escalate_a_calibrated_zone() -> None:
    # A 20 m² zone: 25 people are 1.25/m² (notice), 40 are 2.0/m² (warning, Fruin LOS D at
    # 1.43), 70 are 3.5/m² (critical, LOS E at 3.33) although 70 < 5 × 20 people.
    thresholds = rules(
        min_people=20,
        min_duration_s=5,
        escalate_after_s=2,
        severity=SeverityLevels(
            warning=SeverityStep(people=1000, density_per_m2=1.43),
            critical=SeverityStep(people=2000, density_per_m2=3.33),
        ),
    )
    monitor = GatheringMonitor(thresholds)
    counts = [25] * 8 + [40] * 5 + [70] * 5
    events = feed(monitor, counts, densities=[c / 20.0 for c in counts])
    assert [(e.kind, e.severity) for _, e in events] == [
        ("started", Severity.NOTICE),
        ("escalated", Severity.WARNING),
        ("escalated", Severity.CRITICAL),
    ]
    assert events[2][1].density == pytest.approx(3.5)
    assert "people/m²" in events[2][1].reason


def test_min_density_starts_a_gathering_below_min_people() -> None:
    monitor = GatheringMonitor(
        rules(min_people=50, min_density_per_m2=1.2, min_duration_s=3, clear_after_s=2)
    )
    counts = [20] * 6 + [5] * 5  # 20 people on 16 m² = 1.25/m²
    events = feed(monitor, counts, densities=[c / 16.0 for c in counts])
    assert kinds(events) == [("started", 3), ("ended", 8)]
    assert "people/m²" in events[0][1].reason


# -- invariants under noise ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_noisy_counts_never_break_the_episode_contract(seed: int) -> None:
    rng = random.Random(seed)
    monitor = GatheringMonitor(
        rules(
            min_people=15,
            min_duration_s=10,
            clear_after_s=8,
            escalate_after_s=3,
            sudden=SuddenRise(rise_people=10, within_s=10, hold_s=2, cooldown_s=20),
        )
    )
    level, counts = 5.0, []
    for _ in range(3000):
        level = min(max(level + rng.gauss(0, 2.5), 0), 90)
        noisy = level if rng.random() > 0.05 else 0  # 5 % frames where detection fails
        counts.append(max(0, round(noisy + rng.gauss(0, 2))))
    events = feed(monitor, counts, step=0.5)
    assert events, "the random walk crosses the thresholds: episodes are expected"
    assert_well_formed(events)
    # Never a flood: episodes are separated by at least their clear hold.
    starts = [e.at for _, e in events if e.kind == "started"]
    assert len(starts) <= len(counts) * 0.5 / (10 * 0.8)


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="exit_people"):
        rules(min_people=5, exit_people=6)
    with pytest.raises(ValueError, match=r"warning\.people"):
        rules(min_people=20, severity=SeverityLevels(warning=SeverityStep(people=10)))
    with pytest.raises(ValueError, match=r"critical\.density"):
        rules(
            severity=SeverityLevels(
                warning=SeverityStep(density_per_m2=3.0), critical=SeverityStep(density_per_m2=2)
            )
        )
    assert rules(min_people=1).exit_bound == 1
    assert rules(min_people=20).exit_bound == 16
