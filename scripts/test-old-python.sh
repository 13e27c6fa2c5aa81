#!/usr/bin/env bash
# The device side on JetPack 5's Python 3.8, for real (not only vermin's static check):
#   1. a Python 3.8 virtualenv with the built wheel and `jetfleet[agent]` only (no torch, no controller),
#      resolved from the package index as a Jetson owner's pip would;
#   2. the device-side tests (tests/agent, tests/common, tests/proto) on that interpreter; those that need the
#      controller are left out by tests/conftest.py and counted;
#   3. a Python 3.8 agent process, enrolled with a controller from .venv on loopback, receives basic_cnn INT8,
#      runs a job on the digits test set and must report the registry's accuracy (scripts/device_e2e.py).
# Python 3.8 comes from PATH or pyenv (scripts/pythons.py); PYTHON_OLD=/path/to/python overrides it.
# Usage: scripts/test-old-python.sh [pytest args...]      (run from anywhere; needs .venv from `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOST=$ROOT/.venv/bin/python
VENV=$ROOT/build/py38
WHEELS=$ROOT/build/py38-wheel
started=$SECONDS

phase() { echo "== [$((SECONDS - started)) s] $*"; }
quiet_pip() { "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }  # this machine's find-links noise

if ! PYTHON_OLD=${PYTHON_OLD:-$("$HOST" scripts/pythons.py 3.8 2>/dev/null)}; then
    # `make test` runs this for everyone; without a 3.8 it says why it skips, CI (JETFLEET_REQUIRE_OLD_PYTHON=1) fails.
    if [ -n "${JETFLEET_REQUIRE_OLD_PYTHON:-}" ]; then
        echo "error: no Python 3.8 here (PATH or pyenv); set PYTHON_OLD to one" >&2
        exit 1
    fi
    echo "device side on Python 3.8: SKIPPED (no python3.8 on PATH or under pyenv; set PYTHON_OLD)"
    exit 0
fi
phase "device side on $("$PYTHON_OLD" -V 2>&1) ($PYTHON_OLD)"

rm -rf "$VENV" "$WHEELS"
quiet_pip "$HOST" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation . -w "$WHEELS"
WHEEL=$(ls "$WHEELS"/jetfleet-*.whl)
"$PYTHON_OLD" -m venv "$VENV"
# pytest 9 needs Python 3.10: the test tools get ranges here, like the agent's own requirements. onnx is
# one of them: the tests write their models with onnx.helper, while the agent itself no longer needs it.
quiet_pip "$VENV/bin/pip" install --quiet --disable-pip-version-check "$WHEEL[agent]" 'pytest>=8,<9' 'pytest-timeout>=2.3,<3' \
    'onnx>=1.17,<2'
phase "installed: $("$VENV/bin/pip" list --disable-pip-version-check 2>/dev/null |
    awk '/^(numpy|grpcio|protobuf|onnxruntime|onnx|pillow|cryptography) /{printf "%s=%s ", $1, $2}')"
if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "error: jetfleet[agent] pulled torch into the device environment" >&2
    exit 1
fi

phase "device-side tests on Python 3.8"
# OMP: one thread each, so the tests' own agents and ONNX Runtime do not spin against each other on 2 cores.
OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -m "not gpu" tests/agent tests/common tests/proto "$@"

if [ -z "${JETFLEET_SKIP_DEVICE_E2E:-}" ]; then
    phase "a Python 3.8 agent process against a controller on loopback"
    OMP_NUM_THREADS=1 "$HOST" scripts/device_e2e.py --agent-cmd "$VENV/bin/jetfleet-agent" --expect-python 3.8
fi
phase "done"
