# snsync developer entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench lint typecheck unit integration soak clean lock kill-test

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

LINTED := $(wildcard snsync tests benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# Issue 9.6: twenty kill -9 points per seed, ten seeds, each then one clean cycle vs a twin.
kill-test: $(STAMP)
	SNSYNC_KILL_POINTS=20 SNSYNC_KILL_SEEDS=1,2,3,4,5,6,7,8,9,10 \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_trust_kill.py

demo: $(STAMP)
	$(BIN)/python -m snsync.demo

# The fault campaign on many seeds (every sandbox fault kind at 10%; the suite runs one seed).
SOAK_SEEDS ?= 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20
soak: $(STAMP)
	SNSYNC_SOAK_SEEDS=$(SOAK_SEEDS) $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/integration/test_fault_campaign.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.$(or $(BENCH),run) $(BENCH_ARGS)

# Re-pin after changing dependencies: installs fresh and writes constraints.txt.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[test]'
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^snsync' > constraints.txt
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .bench
