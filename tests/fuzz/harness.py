"""Plumbing shared by the atheris harnesses in this directory.

A harness is a script: `python tests/fuzz/fuzz_<family>.py [corpus_dir...] [-libFuzzer flags]`
(`-max_total_time=N`, `-runs=N`, `-artifact_prefix=DIR/`; a file instead of a directory runs
just that input, to reproduce a crash). The checks themselves are the ones the hypothesis tests
use (tests/unit/parser_properties.py); only the project's modules are instrumented for coverage.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

UNIT_TESTS = Path(__file__).resolve().parents[1] / "unit"


def instrumented(*also: str) -> atheris.import_hook.HookManager:
    """Context manager: the project (plus `also`) is instrumented as it is imported in it.
    The shared checks are too, so their branches (a form accepted, a batch refused) guide the
    fuzzer as well."""
    if str(UNIT_TESTS) not in sys.path:
        sys.path.insert(0, str(UNIT_TESTS))
    return atheris.instrument_imports(include=["usbprintd", "parser_properties", *also])


def scratch_parent() -> Path:
    """In memory where possible: the file store fsyncs every write."""
    shm = Path("/dev/shm")
    return shm if os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def scratch_path(harness: str, pid: int) -> Path:
    return scratch_parent() / f"usbprintd-{harness}-{pid}"


def scratch_dir() -> Path:
    """A private directory for the files this harness writes. libFuzzer ends the process
    without running exit handlers, so directories left by earlier runs are removed here (and
    by tests/fuzz/run.py after each run)."""
    harness = Path(sys.argv[0]).stem
    for stale in scratch_parent().glob(f"usbprintd-{harness}-*"):
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = scratch_path(harness, os.getpid())
    path.mkdir()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reset_dir(path: Path) -> Path:
    """`path` as an empty directory (every input starts from the same files)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def fuzz(one_input: Callable[[bytes], None]) -> None:
    """Hand `one_input` to libFuzzer with this process's arguments; never returns."""
    logging.disable(logging.CRITICAL)  # the daemon logs every refusal; the checks judge it
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
