"""Real-kernel latencies come from the end-to-end harness (QEMU guest with a real USB stack),
not from this benchmark: it only reports what that harness recorded, and says so when nothing is
there. It never makes numbers up.

Expected file (written by tests/e2e): tests/e2e/.cache/latency.json

    {"measured_at": "2025-01-01T12:00:00Z",          # optional
     "source": "tests/e2e/test_hotplug.py",          # optional
     "figures": {"plug_to_accepting_s": [0.41, 0.39],  # a number or a list of samples (seconds)
                 "unplug_to_refused_s": 0.05,
                 "firmware_to_serving_s": {"samples": [2.1, 2.3]}}}

A flat object without "figures" is read the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import Summary, format_summary

REPO = Path(__file__).resolve().parents[1]
LATENCY_FILE = REPO / "tests" / "e2e" / ".cache" / "latency.json"
NOT_MEASURED = "not measured in this run"

LABELS = {
    "plug_to_accepting_s": "USB plug → port accepting",
    "unplug_to_refused_s": "USB unplug → connection refused",
    "firmware_to_serving_s": "Firmware upload start → port serving",
}


@dataclass(frozen=True)
class Latencies:
    source: str
    measured_at: str
    rows: dict[str, Summary]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "measured_at": self.measured_at,
                "figures": {key: summary.as_dict() for key, summary in self.rows.items()}}


def _samples(value: Any) -> list[float]:
    if isinstance(value, dict):
        value = value.get("samples", value.get("median"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, list):
        return [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    return []


def parse_latencies(data: Any, source: str) -> Latencies | None:
    if not isinstance(data, dict):
        return None
    figures = data.get("figures", data)
    if not isinstance(figures, dict):
        return None
    rows = {}
    for key, value in figures.items():
        summary = Summary.of(_samples(value))
        if summary is not None:
            rows[key] = summary
    if not rows:
        return None
    return Latencies(str(data.get("source", source)), str(data.get("measured_at", "unknown")),
                     rows)


def load_latencies(path: Path = LATENCY_FILE) -> Latencies | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return parse_latencies(data, str(path.relative_to(REPO) if path.is_relative_to(REPO)
                                     else path))


def latency_markdown(latencies: Latencies | None) -> str:
    title = "Real-kernel latencies (end-to-end harness, QEMU guest)"
    if latencies is None:
        return (f"{title}: {NOT_MEASURED} (plug → accepting, unplug → refused, firmware upload "
                f"→ serving; no {LATENCY_FILE.relative_to(REPO)})")
    lines = [f"{title}, from {latencies.source}, measured {latencies.measured_at} "
             "(not by this run):", "", "| Latency | Seconds median (min-max) | Runs |",
             "|---|---:|---:|"]
    for key, summary in latencies.rows.items():
        lines.append(f"| {LABELS.get(key, key)} | {format_summary(summary)} "
                     f"| {len(summary.samples)} |")
    return "\n".join(lines)
