"""The real-kernel figures file that `make bench` reports (host side, no guest needed): a
partial guest run replaces only the figures it measured, and every figure says when, on which
commit and which kernel it was measured."""

from __future__ import annotations

from bench.latency import figure_lines, latency_markdown, merge_run, parse_latencies

FULL_RUN = {"kernel": "6.1.0-28-amd64", "figures": {
    "plug_to_accepting_ms": [433.1, 440.2, 425.0],
    "unplug_to_refused_ms": [16.4, 15.0, 18.2],
    "firmware_upload_to_serving_ms": [240.0],
    "rss_idle_usb_web_mdns_mib": [23.4],
}}


def test_a_partial_run_replaces_only_what_it_measured():
    cached = merge_run(None, FULL_RUN, "2026-11-21 08:51 UTC", "1fd4f0b")
    partial = {"kernel": "6.1.0-29-amd64", "figures": {"unplug_to_refused_ms": [12.0]}}
    merged = merge_run(cached, partial, "2026-11-22 10:00 UTC", "abc1234-dirty")
    assert set(merged["figures"]) == set(FULL_RUN["figures"])
    assert merged["figures"]["unplug_to_refused_ms"] == {
        "samples": [12.0], "measured_at": "2026-11-22 10:00 UTC", "commit": "abc1234-dirty",
        "kernel": "6.1.0-29-amd64"}
    assert merged["figures"]["plug_to_accepting_ms"] == {
        "samples": [433.1, 440.2, 425.0], "measured_at": "2026-11-21 08:51 UTC",
        "commit": "1fd4f0b", "kernel": "6.1.0-28-amd64"}


def test_figures_of_unknown_origin_are_dropped_at_the_next_run():
    flat = {"firmware_to_serving_ms": 1521.4, "plug_to_accept_ms": 433.1}
    merged = merge_run(flat, {"figures": {"unplug_to_refused_ms": [16.4]}}, "now", "1fd4f0b")
    assert list(merged["figures"]) == ["unplug_to_refused_ms"]


def test_the_report_says_per_figure_when_and_on_what_it_was_measured():
    cached = merge_run(None, FULL_RUN, "2026-11-21 08:51 UTC", "1fd4f0b")
    merged = merge_run(cached, {"kernel": "k2", "figures": {"unplug_to_refused_ms": [12.0]}},
                       "2026-11-22 10:00 UTC", "abc1234")
    text = latency_markdown(parse_latencies(merged, "latency.json"))
    assert ("| USB plug → port accepting | ms | 433 (425-440) | 3 | 2026-11-21 08:51 UTC, "
            "commit 1fd4f0b, kernel 6.1.0-28-amd64 |") in text
    assert "| USB unplug → connection refused | ms | 12 | 1 | 2026-11-22 10:00 UTC, " \
           "commit abc1234, kernel k2 |" in text
    assert "| RSS idle, USB + web + mDNS on (real kernel) | MiB | 23.4 | 1 |" in text


def test_terminal_lines_give_median_and_range_with_units():
    lines = figure_lines(parse_latencies(FULL_RUN, "run"))
    assert "USB plug → port accepting: 433 ms (425-440, 3 runs)" in lines
    assert "Firmware upload start (first byte at the printer) → port serving: 240 ms" in lines
    assert "RSS idle, USB + web + mDNS on (real kernel): 23.4 MiB" in lines


def test_figures_are_listed_plug_first_memory_last_whatever_the_file_order():
    lines = figure_lines(parse_latencies({"figures": {
        "rss_idle_usb_web_mdns_mib": 23.4, "firmware_upload_to_serving_ms": 240.0,
        "some_new_figure_ms": 1.0, "plug_to_accepting_ms": 433.0}}, "run"))
    assert [line.split(":")[0] for line in lines] == [
        "USB plug → port accepting",
        "Firmware upload start (first byte at the printer) → port serving",
        "RSS idle, USB + web + mDNS on (real kernel)", "some_new_figure"]
