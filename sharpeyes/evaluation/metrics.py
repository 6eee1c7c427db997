"""Scores: per-frame count errors and gathering episodes against labelled intervals.

Episodes are matched one to one, greedily by the length of their overlap in time: a
predicted episode that overlaps a true one is a hit (precision), a true episode overlapped
by a predicted one is found (recall). The alert delay of a match is the time from the true
``started`` to the predicted ``started``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class CountScores:
    frames: int
    mae: float
    rmse: float
    bias: float  # mean(predicted − true): negative when the detector under-counts
    true_mean: float
    predicted_mean: float

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def count_scores(true: Sequence[int], predicted: Sequence[int]) -> CountScores:
    if len(true) != len(predicted) or not true:
        raise ValueError("count_scores needs two equally long, non-empty sequences")
    t = np.asarray(true, np.float64)
    p = np.asarray(predicted, np.float64)
    error = p - t
    return CountScores(
        frames=len(t),
        mae=float(np.abs(error).mean()),
        rmse=float(math.sqrt((error**2).mean())),
        bias=float(error.mean()),
        true_mean=float(t.mean()),
        predicted_mean=float(p.mean()),
    )


@dataclass(frozen=True)
class Episode:
    start: float  # when the gathering began (the dwell's first sample)
    alerted: float  # when ``started`` was raised
    end: float  # ``ended`` or the end of the footage
    rule: str
    peak: int
    open_at_end: bool = False

    def overlap(self, other: Episode) -> float:
        return min(self.end, other.end) - max(self.start, other.start)


@dataclass(frozen=True)
class EpisodeScores:
    true: int
    predicted: int
    matched: int
    precision: float | None  # None without predicted episodes
    recall: float | None  # None without true episodes
    mean_alert_delay_s: float | None
    pairs: list[tuple[int, int]]  # (true index, predicted index)

    def as_dict(self) -> dict[str, object]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "true": self.true,
            "predicted": self.predicted,
            "matched": self.matched,
            "precision": r(self.precision),
            "recall": r(self.recall),
            "mean_alert_delay_s": r(self.mean_alert_delay_s),
        }


def match_episodes(true: Sequence[Episode], predicted: Sequence[Episode]) -> EpisodeScores:
    candidates = sorted(
        (
            (-t.overlap(p), i, j)
            for i, t in enumerate(true)
            for j, p in enumerate(predicted)
            if t.overlap(p) >= 0
        ),
    )
    used_true: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for _, i, j in candidates:
        if i in used_true or j in used_pred:
            continue
        used_true.add(i)
        used_pred.add(j)
        pairs.append((i, j))
    delays = [predicted[j].alerted - true[i].alerted for i, j in pairs]
    return EpisodeScores(
        true=len(true),
        predicted=len(predicted),
        matched=len(pairs),
        precision=len(pairs) / len(predicted) if predicted else None,
        recall=len(pairs) / len(true) if true else None,
        mean_alert_delay_s=float(np.mean(delays)) if delays else None,
        pairs=sorted(pairs),
    )
