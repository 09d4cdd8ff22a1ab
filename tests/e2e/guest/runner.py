"""Runs pytest in the guest with the arguments the host left in the results share."""

import json
import os
import sys
from pathlib import Path

import pytest

# hypothesis is not used here and its plugin costs seconds of startup under TCG.
FIXED_ARGS = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-o", "timeout=90",
              "-rA", "--tb=short"]

if __name__ == "__main__":
    request = json.loads((Path(os.environ["USBPRINTD_E2E_RESULTS"]) / "request.json").read_text())
    sys.exit(pytest.main([*FIXED_ARGS, *request["pytest_args"]]))
