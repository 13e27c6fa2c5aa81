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

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs viz .pytest_cache .ruff_cache
