"""The profile summary turns py-spy's collapsed stacks into own and inclusive shares."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: bench/

from bench.profile import summarise_collapsed


def test_own_and_inclusive_shares_count_each_function_once_per_stack(tmp_path):
    raw = tmp_path / "small.pyspy.txt"
    raw.write_text(
        'process 1:"python -m usbprintd";thread (0x1);main (cli.py:1);run (a.py:1);log (l.py:1) 6\n'
        'process 1:"python -m usbprintd";thread (0x1);main (cli.py:1);run (a.py:1) 3\n'
        "main (cli.py:1);main (cli.py:1) 1\n"  # recursion: still 1 sample for main
    )
    text = summarise_collapsed(raw, top=10)
    assert text.startswith("10 samples")
    assert "| 60.0 | 60.0 | log (l.py:1) |" in text
    assert "| 30.0 | 90.0 | run (a.py:1) |" in text
    assert "| 100.0 | main (cli.py:1) |" in text
