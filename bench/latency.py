"""Real-kernel latencies come from the end-to-end harness (QEMU guest with a real USB stack),
not from this benchmark: it only reports what that harness recorded, and says so when nothing is
there. It never makes numbers up.

Expected file (written by tests/e2e): tests/e2e/.cache/latency.json, either flat

    {"plug_to_accept_ms": 450.7, "unplug_to_refused_ms": 24.0, "firmware_to_serving_ms": 1517.1}

or with the figures under "figures" and optional "measured_at" / "source"; each value is a
number, a list of samples or {"samples": [...]}. The key's suffix gives the unit (_ms or _s).
A flat object without "figures" is read the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import Summary, format_summary

REPO = Path(__file__).resolve().parents[1]
LATENCY_FILE = REPO / "tests" / "e2e" / ".cache" / "latency.json"
NOT_MEASURED = "not measured in this run"

LABELS = {
    "plug_to_accept": "USB plug → port accepting",
    "plug_to_accepting": "USB plug → port accepting",
    "unplug_to_refused": "USB unplug → connection refused",
    "firmware_to_serving": "Firmware upload start → port serving",
}
UNITS = {"_ms": "ms", "_s": "s"}


def label_and_unit(key: str) -> tuple[str, str]:
    for suffix, unit in UNITS.items():
        if key.endswith(suffix):
            base = key[: -len(suffix)]
            return LABELS.get(base, base), unit
    return LABELS.get(key, key), ""


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
    latencies = parse_latencies(data, str(path.relative_to(REPO) if path.is_relative_to(REPO)
                                          else path))
    if latencies is not None and latencies.measured_at == "unknown":
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
        latencies = replace(latencies, measured_at=f"{stamp} (file time)")
    return latencies


def latency_markdown(latencies: Latencies | None) -> str:
    title = "Real-kernel latencies (end-to-end harness, QEMU guest)"
    if latencies is None:
        return (f"{title}: {NOT_MEASURED} (plug → accepting, unplug → refused, firmware upload "
                f"→ serving; no {LATENCY_FILE.relative_to(REPO)})")
    lines = [f"{title}, from {latencies.source}, measured {latencies.measured_at} "
             "(not by this run):", "", "| Latency | Unit | Median (min-max) | Runs |",
             "|---|---|---:|---:|"]
    for key, summary in latencies.rows.items():
        label, unit = label_and_unit(key)
        lines.append(f"| {label} | {unit} | {format_summary(summary)} | {len(summary.samples)} |")
    return "\n".join(lines)
