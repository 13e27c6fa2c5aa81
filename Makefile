# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use (torch comes from this machine's local wheel cache).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-device check-tensorrt-api bench install clean

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
# qemu-user-static, root only). Each says why it skips where it cannot run; CI sets JETFLEET_REQUIRE_* to fail instead.
test-device: $(STAMP)
	$(BIN)/python scripts/check_agent_wheels.py
	scripts/test-old-python.sh
	scripts/test-arm64.sh

# TensorRT API check (not in `make test`: it installs from PyPI and needs a C compiler and binutils). For each
# version, a venv build/trt/py3.X-VERSION with the real bindings wheel (~1-6 MB) and numpy; TensorRT's libraries are not on
# PyPI (tensorrt-*-libs are stub sdists that download from NVIDIA's index), so the script loads the bindings over
# generated stand-ins and checks agent/engines/tensorrt.py by introspection (real libraries are used where installed).
# 8.x: tensorrt-bindings 8.6.1 has wheels for CPython 3.6-3.11 only; without one for TRT_PYTHON it is skipped.
TRT_VERSIONS ?= 8.6.1 10.3.0 10.13.3.9 10.16.1.11 11.4.0.106
TRT_PYTHON   ?= $(PYTHON)

check-tensorrt-api:
	$(TRT_PYTHON) scripts/check_tensorrt_api.py --list >/dev/null
	@py=$$($(TRT_PYTHON) -c 'import sys; print("py%d.%d" % sys.version_info[:2])'); failed=; \
	for v in $(TRT_VERSIONS); do \
	    case $$v in 8.*) pkg=tensorrt-bindings ;; *) pkg=tensorrt-cu12-bindings ;; esac; \
	    venv=build/trt/$$py-$$v; \
	    if [ ! -f $$venv/.installed ]; then \
	        rm -rf $$venv; \
	        if ! { $(TRT_PYTHON) -m venv $$venv && $$venv/bin/pip install --quiet --disable-pip-version-check \
	                --only-binary=:all: "$$pkg[numpy]==$$v" && touch $$venv/.installed; }; then \
	            rm -rf $$venv; \
	            case $$v in 8.*) echo "TensorRT $$v: no $$pkg wheel for $$($(TRT_PYTHON) -V): 8.x path not checked"; continue ;; esac; \
	            failed="$$failed $$v"; continue; \
	        fi; \
	    fi; \
	    echo "== TensorRT $$v ($$venv)"; \
	    $$venv/bin/python scripts/check_tensorrt_api.py || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "TensorRT API check failed for:$$failed" >&2; exit 1; fi

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs viz .pytest_cache .ruff_cache
