# Every target creates or updates .venv itself, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench stress model clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg package.xml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ros,train,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m anovox_training.integration.demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m anovox_perception.tools.bench --out bench_out

# Overload and fault scenarios against the node, longer than the tests (about 3 minutes).
stress: $(STAMP)
	$(BIN)/python -m anovox_perception.tools.stress --out stress_out

model: $(STAMP)
	$(BIN)/python -m anovox_training.make_model

clean:
	rm -rf build install log bench_out demo_out stress_out .pytest_cache
