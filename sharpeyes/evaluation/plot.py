"""Predicted against true people count over time, with the gathering episodes of each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sharpeyes.evaluation.metrics import Episode


def plot_counts(
    path: Path,
    times: Sequence[float],
    true: Sequence[int],
    predicted: Sequence[int],
    true_episodes: Sequence[Episode],
    predicted_episodes: Sequence[Episode],
    *,
    title: str,
    threshold: int | None = None,
) -> Path:
    """Write a PNG: counts over time above two bands showing true and predicted episodes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - matplotlib is a declared dependency
        raise RuntimeError(
            "the count plot needs matplotlib: pip install 'sharpeyes[eval]'"
        ) from error

    figure, (counts, bands) = plt.subplots(
        2,
        1,
        figsize=(11, 4.8),
        sharex=True,
        gridspec_kw={"height_ratios": [4, 1]},
        constrained_layout=True,
    )
    counts.plot(times, true, color="black", linewidth=1.4, label="true count")
    counts.plot(times, predicted, color="tab:red", linewidth=1.2, label="predicted count")
    if threshold is not None:
        counts.axhline(
            threshold,
            color="tab:blue",
            linestyle="--",
            linewidth=0.9,
            label=f"gathering threshold ({threshold})",
        )
    counts.set_ylabel("people")
    counts.set_title(title, fontsize=10)
    counts.grid(alpha=0.3)
    counts.legend(loc="upper left", fontsize=8)
    for row, (episodes, colour) in enumerate(
        ((true_episodes, "black"), (predicted_episodes, "tab:red"))
    ):
        for episode in episodes:
            bands.broken_barh(
                [(episode.start, max(episode.end - episode.start, 0.1))],
                (1 - row - 0.35, 0.7),
                facecolors=colour,
                alpha=0.55,
            )
            bands.plot([episode.alerted], [1 - row], marker="v", color=colour, markersize=5)
    bands.set_yticks([1, 0], ["true", "predicted"], fontsize=8)
    bands.set_ylim(-0.6, 1.6)
    bands.set_xlabel("time (s)")
    bands.set_title("gathering episodes (▼ = alert raised)", fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
