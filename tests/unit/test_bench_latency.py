"""The benchmark reports real-kernel latencies only from the end-to-end harness's file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: bench/

from bench.latency import NOT_MEASURED, latency_markdown, load_latencies


def test_without_a_latency_file_the_report_says_not_measured(tmp_path):
    latencies = load_latencies(tmp_path / "missing.json")
    assert latencies is None
    assert NOT_MEASURED in latency_markdown(latencies)


def test_a_broken_latency_file_counts_as_not_measured(tmp_path):
    path = tmp_path / "latency.json"
    path.write_text("{not json")
    assert load_latencies(path) is None
    path.write_text(json.dumps({"figures": {"plug_to_accepting_s": "fast"}}))
    assert load_latencies(path) is None


def test_latency_samples_are_summarised_from_numbers_lists_and_objects(tmp_path):
    path = tmp_path / "latency.json"
    path.write_text(json.dumps({
        "measured_at": "2025-01-01T12:00:00Z",
        "figures": {
            "plug_to_accepting_s": [0.5, 0.3, 0.4],
            "unplug_to_refused_s": 0.05,
            "firmware_to_serving_s": {"samples": [2.0, 2.4]},
        },
    }))
    latencies = load_latencies(path)
    assert latencies is not None
    assert latencies.rows["plug_to_accepting_s"].median == 0.4
    assert latencies.rows["unplug_to_refused_s"].samples == (0.05,)
    assert latencies.rows["firmware_to_serving_s"].high == 2.4
    text = latency_markdown(latencies)
    assert NOT_MEASURED not in text
    assert "| USB plug → port accepting | s | 0.400 (0.300-0.500) | 3 |" in text
    assert "2025-01-01T12:00:00Z" in text


def test_the_e2e_harness_flat_file_in_milliseconds_is_read_with_its_unit(tmp_path):
    path = tmp_path / "latency.json"
    path.write_text(json.dumps({"firmware_to_serving_ms": 1517.1, "plug_to_accept_ms": 450.7,
                                "unplug_to_refused_ms": 24.0}))
    latencies = load_latencies(path)
    assert latencies is not None
    assert latencies.measured_at.endswith("(file time)")
    text = latency_markdown(latencies)
    assert "| USB plug → port accepting | ms | 451 | 1 |" in text
    assert "| USB unplug → connection refused | ms | 24 | 1 |" in text
    assert "| USB plug → port serving, firmware printer | ms | 1517 | 1 |" in text
