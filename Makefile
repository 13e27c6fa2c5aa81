# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use (torch comes from this machine's local wheel cache).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[controller,agent,dev]'
	touch $(STAMP)

# The main job on the embedded default: train basic_cnn on scikit-learn's digits.
demo: $(STAMP)
	$(BIN)/jetfleet train --model basic_cnn --dataset digits --epochs 10 --out runs/demo --overwrite

# The registry contract tests also run against PostgreSQL: scripts/test-postgres.sh
# starts a local server (installing it with apt if needed) and prints its URL.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	JETFLEET_TEST_PG_URL="$${JETFLEET_TEST_PG_URL:-$$(scripts/test-postgres.sh || true)}" $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs viz .pytest_cache .ruff_cache
