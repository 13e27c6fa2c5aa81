# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use (torch comes from this machine's local wheel cache).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-device bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[controller,agent,dev]'
	$(BIN)/python scripts/gen_proto.py --bootstrap  # build/protoc: the pinned generator the stubs test compares with
	touch $(STAMP)

# The main job on the embedded default: a controller and three agents on loopback; basic_cnn trained on
# scikit-learn's digits, quantized, deployed with a canary, benchmarked; the report lands in runs/demo-fleet/report.
demo: $(STAMP)
	$(BIN)/jetfleet demo --out runs/demo-fleet

# The registry contract tests also run against PostgreSQL: scripts/test-postgres.sh
# starts a local server (installing it with apt if needed) and prints its URL.
# The fleet report is rendered in headless Chromium: scripts/install-chromium.sh installs Debian's if needed.
test: lint $(STAMP)
	scripts/install-chromium.sh >/dev/null || echo "chromium unavailable: the report rendering test will skip"
	JETFLEET_TEST_PG_URL="$${JETFLEET_TEST_PG_URL:-$$(scripts/test-postgres.sh || true)}" $(BIN)/pytest
	$(MAKE) test-device

# Static checks: ruff, and nothing newer than Python 3.8 on the device side (JetPack 5).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_python_floor.py

# The device side where it really runs: jetfleet[agent] resolves to wheels for cp38/cp310/cp312 on aarch64
# and x86-64; the device-side tests and a real agent on Python 3.8; a real agent on aarch64 (debootstrap +
# qemu-user-static, root only: scripts/test-arm64.sh says why it skips, JETFLEET_REQUIRE_ARM64=1 fails instead).
test-device: $(STAMP)
	$(BIN)/python scripts/check_agent_wheels.py
	scripts/test-old-python.sh
	scripts/test-arm64.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs viz .pytest_cache .ruff_cache
