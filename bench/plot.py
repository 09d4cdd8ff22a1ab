"""The results as one PNG: a small bar chart per figure, medians with min-max whiskers.
matplotlib is optional (the `bench` extra); without it the PNG is skipped, nothing else."""

from __future__ import annotations

import math
from pathlib import Path

from bench.stats import BASELINE, SUBJECT, Figure

COLOURS = {SUBJECT: "#2a7ab0", BASELINE: "#9a9a9a"}


def write_png(figures: list[Figure], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [f for f in figures if any(f.summary(server) for server in COLOURS)]
    if not shown:
        return False
    columns = 4
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax, figure in zip(axes.flat, shown, strict=False):
        _draw(ax, figure)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _draw(ax, figure: Figure) -> None:
    names, medians, errors, colours = [], [], [[], []], []
    for server, colour in COLOURS.items():
        summary = figure.summary(server)
        if summary is None:
            continue
        names.append(server)
        medians.append(summary.median)
        errors[0].append(summary.median - summary.low)
        errors[1].append(summary.high - summary.median)
        colours.append(colour)
    ax.bar(names, medians, yerr=errors, color=colours, capsize=4)
    ratio = figure.ratio
    verdict = {True: " ✓", False: " ✗", None: ""}[figure.verdict]
    subtitle = f"{ratio:.2f}x{verdict}" if ratio is not None else verdict.strip()
    ax.set_title(f"{figure.label}\n{subtitle}", fontsize=8)
    ax.set_ylabel(figure.unit, fontsize=8)
    ax.tick_params(labelsize=8)
