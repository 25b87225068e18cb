# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv first (once).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins older versions of packages pytest needs, so it lives in a venv of its own.
CHECKOV_VENV := .venv-checkov

.PHONY: setup run test lint checkov bench bench-core perf-compare wheel clean

# Byte-compile the package as a regular (wheel) install does: an editable install leaves that to the first
# import, which PYTHONDONTWRITEBYTECODE (common in containers) forbids, so every `gen` would compile its modules
# again (~50 ms a start). Only changed files are compiled again.
setup: $(STAMP)
	$(BIN)/python -m compileall -q generator

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/gen run --workers 2 --events 500000 --out shards

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	touch $@

checkov: $(CHECKOV_VENV)/.installed
	cd terraform && ../$(CHECKOV_VENV)/bin/checkov -d . --framework terraform --skip-download --quiet --compact

# Spark (a reader of our Parquet in one test) is large: installed for the tests only, not for `make run`.
$(VENV)/.installed-spark: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

test: lint checkov $(VENV)/.installed-spark
	$(BIN)/python -m pytest -q

wheel: setup
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

bench: setup
	$(BIN)/python perf/bench.py

# Compare the instance types benchmarked by terraform's perf_instance_types (their results.json under
# <prefix>/perf/ in the bucket) with the shipped samples: make perf-compare BUCKET=my-bucket PREFIX=temu-ng/v1
perf-compare: setup
	$(BIN)/python perf/compare.py --from-s3 s3://$(BUCKET)/$(PREFIX)/perf/ perf/results/*/results.json

bench-core: setup
	$(BIN)/python perf/bench_core.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache .hypothesis dist
