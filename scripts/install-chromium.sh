#!/usr/bin/env bash
# Install Debian's chromium for the headless rendering test of the fleet report
# (tests/controller/fleet/test_report.py) and print the binary's path.
# Idempotent: does nothing when `chromium` is already on PATH; installing needs root.
# apt's output goes to a log that is shown only when the install fails.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then echo "chromium is not installed and we are not root" >&2; exit 1; fi
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >"$log" 2>&1; then
        cat "$log" >&2
        echo "installing chromium failed" >&2
        exit 1
    fi
fi
command -v chromium
