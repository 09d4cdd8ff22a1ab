"""Summaries, ratios, targets and the Markdown table of a benchmark run.

Pure functions over plain numbers so they can be unit-tested without starting any server.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

SUBJECT = "usbprintd"
BASELINE = "p910nd"


@dataclass(frozen=True)
class Summary:
    """Median with the observed range: with a handful of runs on a shared machine the range
    says more about noise than a standard deviation would."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float] | tuple[float, ...]) -> Summary | None:
        values = tuple(float(v) for v in samples if v is not None and math.isfinite(v))
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values), values)

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high,
                "samples": list(self.samples)}


@dataclass(frozen=True)
class Target:
    """What the subject must achieve for one figure.

    kind 'ratio_min' / 'ratio_max': subject/baseline ratio of medians (as shown, rounded to two
    decimals) must be >= / <= limit; 'abs_max' / 'abs_below': the subject's median must be
    <= / < limit in the figure's unit."""

    kind: str
    limit: float

    def describe(self, unit: str) -> str:
        return {
            "ratio_min": f">= {self.limit:.1f}x",
            "ratio_max": f"<= {self.limit:.1f}x",
            "abs_max": f"<= {self.limit:g} {unit}",
            "abs_below": f"< {self.limit:g} {unit}",
        }[self.kind]

    def met(self, subject: Summary | None, ratio_value: float | None) -> bool | None:
        """True/False, or None when the run has no number to judge."""
        if self.kind in ("ratio_min", "ratio_max"):
            if ratio_value is None:
                return None
            shown = round(ratio_value, 2)
            return shown >= self.limit if self.kind == "ratio_min" else shown <= self.limit
        if subject is None:
            return None
        if self.kind == "abs_max":
            return subject.median <= self.limit
        return subject.median < self.limit


@dataclass
class Figure:
    """One row of the results table."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: Target | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def add(self, server: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(server, []).append(value)

    def summary(self, server: str) -> Summary | None:
        return Summary.of(self.samples.get(server, []))

    @property
    def ratio(self) -> float | None:
        return ratio(self.summary(SUBJECT), self.summary(BASELINE))

    @property
    def verdict(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.met(self.summary(SUBJECT), self.ratio)

    def as_dict(self) -> dict[str, Any]:
        summaries = {server: self.summary(server) for server in (SUBJECT, BASELINE)}
        return {
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            **{server: s.as_dict() if s else None for server, s in summaries.items()},
            "ratio": self.ratio,
            "target": self.target.describe(self.unit) if self.target else None,
            "met": self.verdict,
            "note": self.note,
        }


def ratio(subject: Summary | None, baseline: Summary | None) -> float | None:
    """subject/baseline of the medians; None when either is missing or the baseline is 0."""
    if subject is None or baseline is None or baseline.median == 0:
        return None
    return subject.median / baseline.median


def format_number(value: float) -> str:
    """Three significant digits, no exponent for the magnitudes a benchmark shows."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    digits = 2 - math.floor(math.log10(magnitude))
    return f"{value:.{digits}f}"


def format_summary(summary: Summary | None) -> str:
    if summary is None:
        return "—"
    if len(summary.samples) == 1 or summary.low == summary.high:
        return format_number(summary.median)
    return (f"{format_number(summary.median)} "
            f"({format_number(summary.low)}-{format_number(summary.high)})")


def format_verdict(met: bool | None) -> str:
    return {True: "meets", False: "**misses**", None: "—"}[met]


def markdown_table(figures: list[Figure]) -> str:
    header = (f"| Figure | Unit | {SUBJECT} median (min-max) | {BASELINE} median (min-max) "
              f"| {SUBJECT}/{BASELINE} | Target | Result |")
    lines = [header, "|---|---|---:|---:|---:|---|---|"]
    for figure in figures:
        ratio_value = figure.ratio
        label = figure.label + (f" ({figure.note})" if figure.note else "")
        lines.append(
            f"| {label} | {figure.unit} "
            f"| {format_summary(figure.summary(SUBJECT))} "
            f"| {format_summary(figure.summary(BASELINE))} "
            f"| {f'{ratio_value:.2f}x' if ratio_value is not None else '—'} "
            f"| {figure.target.describe(figure.unit) if figure.target else '—'} "
            f"| {format_verdict(figure.verdict)} |"
        )
    return "\n".join(lines)
