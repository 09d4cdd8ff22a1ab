#!/bin/sh
# Interactive root shell in the e2e guest (same kernel, shares and modules as the test run).
# In the guest: .venv/bin/python -m pytest -p no:cacheprovider tests/e2e/guest -x
# `exit` powers the guest off.  Options: --memory 512M, --kver 6.1.0-NN-amd64.
cd "$(dirname "$0")" && exec python3 -m vmharness shell "$@"
