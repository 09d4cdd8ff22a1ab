"""Figures from the real kernel (latencies and memory with USB on) come from the end-to-end
harness (QEMU guest with a real USB stack), not from this benchmark: it only reports what that
harness recorded, and says so when nothing is there. It never makes numbers up.

The file, tests/e2e/.cache/latency.json, is written by tests/e2e/conftest.py after every guest
run through `merge_run`: each figure the run measured replaces the cached one, the others stay,
so a partial run (`pytest tests/e2e -k paper`) never wipes what it did not measure. Each figure
keeps when, on which commit and on which kernel it was measured:

    {"source": "tests/e2e (QEMU/TCG guest)",
     "figures": {"plug_to_accepting_ms": {"samples": [433.1, 440.2, 425.0],
                                          "measured_at": "2026-11-21 08:51 UTC",
                                          "commit": "1fd4f0b", "kernel": "6.1.0-28-amd64"}}}

Older forms are still read: a flat object of numbers, or "figures" whose values are numbers or
lists, with an optional file-wide "measured_at" / "source". The key's suffix gives the unit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import Summary, format_number, format_summary

REPO = Path(__file__).resolve().parents[1]
LATENCY_FILE = REPO / "tests" / "e2e" / ".cache" / "latency.json"
SOURCE = "tests/e2e (QEMU/TCG guest)"
NOT_MEASURED = "not measured in this run"
PROVENANCE_KEYS = ("measured_at", "commit", "kernel")

LABELS = {
    "plug_to_accepting": "USB plug → port accepting",
    "plug_to_accept": "USB plug → port accepting",  # older files
    "unplug_to_refused": "USB unplug → connection refused",
    "unplug_mid_job_to_refused": "USB unplug during a job → connection refused",
    "firmware_plug_to_serving": ("USB plug → port serving, firmware printer (enumeration, "
                                 "settle delay, upload, FWVER check)"),
    # Older files: measured from the plug as well, under a name that said otherwise.
    "firmware_to_serving": "USB plug → port serving, firmware printer",
    "firmware_upload_to_serving": ("Firmware upload start (first byte at the printer) → port "
                                   "serving"),
    "rss_idle_usb_web": "RSS idle, USB + web on, mDNS left to umdns (real kernel)",
    "rss_idle_usb_web_mdns": "RSS idle, USB + web + mDNS on (real kernel)",
}
UNITS = {"_ms": "ms", "_s": "s", "_mib": "MiB"}


def _base_and_unit(key: str) -> tuple[str, str]:
    for suffix, unit in UNITS.items():
        if key.endswith(suffix):
            return key[: -len(suffix)], unit
    return key, ""


def label_and_unit(key: str) -> tuple[str, str]:
    base, unit = _base_and_unit(key)
    return LABELS.get(base, base), unit


def _reading_order(key: str) -> tuple[int, str]:
    """Known figures in the order of LABELS (plug, unplug, firmware, memory), others after."""
    base = _base_and_unit(key)[0]
    return (list(LABELS).index(base) if base in LABELS else len(LABELS), key)


@dataclass(frozen=True)
class Latencies:
    source: str
    measured_at: str  # file-wide; a figure's own provenance, when it has one, comes first
    rows: dict[str, Summary]
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)

    def measured(self, key: str) -> str:
        """When and on what `key` was measured: '2026-11-21 08:51 UTC, commit 1fd4f0b'."""
        own = self.provenance.get(key, {})
        parts = [own.get("measured_at") or self.measured_at]
        if own.get("commit"):
            parts.append(f"commit {own['commit']}")
        if own.get("kernel"):
            parts.append(f"kernel {own['kernel']}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "measured_at": self.measured_at,
                "figures": {key: {**summary.as_dict(), **self.provenance.get(key, {})}
                            for key, summary in self.rows.items()}}


def _samples(value: Any) -> list[float]:
    if isinstance(value, dict):
        value = value.get("samples", value.get("median"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, list):
        return [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    return []


def _provenance(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {key: str(value[key]) for key in PROVENANCE_KEYS if value.get(key)}


def parse_latencies(data: Any, source: str) -> Latencies | None:
    if not isinstance(data, dict):
        return None
    figures = data.get("figures", data)
    if not isinstance(figures, dict):
        return None
    rows, provenance = {}, {}
    for key, value in sorted(figures.items(), key=lambda item: _reading_order(item[0])):
        summary = Summary.of(_samples(value))
        if summary is not None:
            rows[key] = summary
            if own := _provenance(value):
                provenance[key] = own
    if not rows:
        return None
    return Latencies(str(data.get("source", source)), str(data.get("measured_at", "unknown")),
                     rows, provenance)


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


def merge_run(cached: Any, run: Mapping[str, Any], measured_at: str,
              commit: str) -> dict[str, Any]:
    """The file's new content after a guest run that wrote `run` ({"kernel", "figures": {key:
    [samples]}}): each figure the run measured replaces the cached one, stamped with
    `measured_at`, `commit` and the run's kernel; the others stay as they were. Cached figures
    without their own provenance (older forms of the file) are dropped: nobody can tell any
    more what measured them."""
    kept: dict[str, Any] = {}
    if isinstance(cached, dict) and isinstance(cached.get("figures"), dict):
        kept = {key: value for key, value in cached["figures"].items()
                if _provenance(value).get("measured_at") and _samples(value)}
    stamp = {"measured_at": measured_at, "commit": commit,
             "kernel": str(run.get("kernel", ""))}
    figures = run.get("figures", {})
    for key, value in (figures.items() if isinstance(figures, dict) else ()):
        if samples := _samples(value):
            kept[key] = {"samples": samples, **stamp}
    return {"source": SOURCE, "figures": dict(sorted(kept.items()))}


def figure_lines(latencies: Latencies) -> list[str]:
    """One line per figure for a terminal: 'USB plug → port accepting: 433 ms (425-440, 3
    runs)'."""
    lines = []
    for key, summary in latencies.rows.items():
        label, unit = label_and_unit(key)
        runs = len(summary.samples)
        spread = (f" ({format_number(summary.low)}-{format_number(summary.high)}, {runs} runs)"
                  if runs > 1 else "")
        lines.append(f"{label}: {format_number(summary.median)} {unit}{spread}".rstrip())
    return lines


def latency_markdown(latencies: Latencies | None) -> str:
    title = "Real-kernel figures (end-to-end harness, QEMU guest)"
    if latencies is None:
        return (f"{title}: {NOT_MEASURED} (plug → accepting, unplug → refused, firmware printer "
                f"plug and upload → serving, idle RSS with USB + web + mDNS; no "
                f"{LATENCY_FILE.relative_to(REPO)}; `make e2e` writes it)")
    lines = [f"{title}, from {latencies.source} (not measured by this run):", "",
             "| Figure | Unit | Median (min-max) | Runs | Measured |", "|---|---|---:|---:|---|"]
    for key, summary in latencies.rows.items():
        label, unit = label_and_unit(key)
        lines.append(f"| {label} | {unit} | {format_summary(summary)} | {len(summary.samples)} "
                     f"| {latencies.measured(key)} |")
    return "\n".join(lines)
