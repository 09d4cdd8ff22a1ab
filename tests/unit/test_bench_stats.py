"""The benchmark's arithmetic and report formatting (no servers are started here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: bench/

from bench.stats import (
    BASELINE,
    SUBJECT,
    Figure,
    Summary,
    Target,
    format_number,
    format_summary,
    markdown_table,
    ratio,
)


def test_summary_is_median_with_range_and_ignores_missing_values():
    summary = Summary.of([3.0, 1.0, float("nan"), 10.0, 2.0])
    assert summary == Summary(median=2.5, low=1.0, high=10.0, samples=(3.0, 1.0, 10.0, 2.0))


def test_summary_of_nothing_is_none():
    assert Summary.of([]) is None
    assert Summary.of([float("inf")]) is None


def test_ratio_is_subject_over_baseline_of_medians():
    assert ratio(Summary.of([50, 60, 70]), Summary.of([100, 120, 200])) == pytest.approx(0.5)
    assert ratio(Summary.of([1]), Summary.of([0])) is None
    assert ratio(None, Summary.of([1])) is None


@pytest.mark.parametrize(
    ("kind", "limit", "subject", "baseline", "expected"),
    [
        ("ratio_min", 1.0, [99.6], [100], True),  # shown as 1.00x: meets
        ("ratio_min", 1.0, [99.4], [100], False),  # shown as 0.99x: misses
        ("ratio_min", 0.7, [70], [100], True),
        ("ratio_max", 1.0, [1.2], [1.0], False),
        ("ratio_max", 1.0, [0.8], [1.0], True),
        ("abs_max", 24.0, [24.0], [], True),
        ("abs_max", 24.0, [24.1], [], False),
        ("abs_below", 1.0, [1.0], [], False),
        ("abs_below", 1.0, [0.2, 0.3, 5.0], [], True),  # judged on the median
    ],
)
def test_targets_judge_what_the_table_shows(kind, limit, subject, baseline, expected):
    figure = Figure("x", "X", "MiB", True, Target(kind, limit))
    for value in subject:
        figure.add(SUBJECT, value)
    for value in baseline:
        figure.add(BASELINE, value)
    assert figure.verdict is expected


def test_a_ratio_target_without_a_baseline_is_not_judged():
    figure = Figure("x", "X", "MiB/s", True, Target("ratio_min", 1.0))
    figure.add(SUBJECT, 10.0)
    assert figure.verdict is None


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (1610.4, "1610"), (48.0, "48"), (20.34, "20.3"), (2.544, "2.54"),
     (0.0351, "0.0351"), (0.5, "0.500")],
)
def test_numbers_keep_three_significant_digits(value, text):
    assert format_number(value) == text


def test_summary_text_shows_range_only_when_there_is_one():
    assert format_summary(Summary.of([2.0, 1.0, 3.0])) == "2 (1-3)"
    assert format_summary(Summary.of([7.5, 7.5])) == "7.50"
    assert format_summary(None) == "—"


def test_markdown_table_has_one_row_per_figure_with_ratio_and_result():
    rate = Figure("rate", "Small jobs", "jobs/s", True, Target("ratio_min", 0.7))
    for value in (600, 650, 700):
        rate.add(SUBJECT, value)
    for value in (1000, 1100):
        rate.add(BASELINE, value)
    memory = Figure("rss", "RSS idle", "MiB", False, note="p910nd: sum")
    memory.add(SUBJECT, 12.0)
    lines = markdown_table([rate, memory]).splitlines()
    assert len(lines) == 4
    assert lines[2] == ("| Small jobs | jobs/s | 650 (600-700) | 1050 (1000-1100) | 0.62x "
                        "| >= 0.7x | **misses** |")
    assert lines[3] == "| RSS idle (p910nd: sum) | MiB | 12 | — | — | — | — |"


def test_figure_as_dict_carries_samples_ratio_and_verdict():
    figure = Figure("cpu", "CPU", "s/GiB", False, Target("ratio_max", 1.0))
    figure.add(SUBJECT, 0.5)
    figure.add(BASELINE, 1.0)
    figure.add(BASELINE, None)  # a missing measurement is not a sample
    data = figure.as_dict()
    assert data[SUBJECT]["samples"] == [0.5]
    assert data[BASELINE] == {"median": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]}
    assert data["ratio"] == pytest.approx(0.5)
    assert data["target"] == "<= 1.0x"
    assert data["met"] is True
