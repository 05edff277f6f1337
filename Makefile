# Every target bootstraps what it needs: a pinned uv in .tools/, then the locked environment in .venv/.
# `make run` and `make report` install what running needs (the locked runtime dependencies, about 470 MB);
# every other target installs everything (test and lint tools, the Ray extra).
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
RUNTIME := .venv/.runtime
SYNCED := .venv/.synced
BYTECODE := .venv/.bytecode
RUN := $(UV) run --frozen --all-extras
RUN_ONLY := $(UV) run --frozen --no-sync
SONGS ?= 50000
EVENTS ?= 1000000

.DEFAULT_GOAL := help
# One sync at a time: under `make -j`, targets needing both environments would run two `uv sync` at once.
.NOTPARALLEL:
.PHONY: help install run test lint format docs report notebooks bench bench-scale bench-s3 clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --inexact: after `make test`, `make run` leaves the test tools in place. --compile-bytecode: every start
# imports pandas and pyarrow; from source that is 1.6 s, from bytecode 0.5 s (and where PYTHONDONTWRITEBYTECODE
# is set, Python never caches it on its own).
# Without PYTHON given, uv takes the first interpreter that satisfies requires-python (3.11-3.13).
PICK := $(if $(filter command line environment,$(origin PYTHON)),--python $(PYTHON))

$(RUNTIME): $(UV) pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info < (3, 14) else "Python 3.14 is not supported yet (uv.lock is resolved for 3.11-3.13). Install 3.13 (uv python install 3.13) and run: make run PYTHON=python3.13")'
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode $(PICK)
	@touch $@

$(SYNCED): $(UV) pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info < (3, 13) else "make test needs Python 3.11 or 3.12: pgserver (the PostgreSQL behind the Redshift stand-in) has no 3.13 wheel. Run: make test PYTHON=python3.12")'
	$(UV) sync --frozen --all-extras --compile-bytecode $(PICK)
	@touch $@ $(RUNTIME)

# The package's own modules too: uv compiles what it installs, not the editable project, and where
# PYTHONDONTWRITEBYTECODE is set every command compiled up to 35 modules from source (0.09 s for all of them;
# alternated, `runs` 0.23-0.25 s -> 0.19-0.23 s). Redone when a module changes.
$(BYTECODE): $(RUNTIME) $(wildcard pipeline/*.py pipeline/*/*.py)
	$(RUN_ONLY) python -m compileall -q pipeline
	@touch $@

install: $(SYNCED) $(BYTECODE) ## create .venv from the lock file

run: $(RUNTIME) $(BYTECODE) ## run the pipeline on the embedded default (demo data into DuckDB)
	$(RUN_ONLY) python -m pipeline run --config config.yaml

test: $(SYNCED) ## run the whole test suite
	$(RUN) pytest

lint: $(SYNCED) ## ruff, mypy, and the import contract (layers, no cycle; see pyproject.toml)
	$(RUN) ruff check pipeline tests
	$(RUN) ruff format --check pipeline tests
	$(RUN) mypy
	$(RUN) lint-imports

format: $(SYNCED) ## apply ruff's formatting and fixes
	$(RUN) ruff format pipeline tests
	$(RUN) ruff check --fix pipeline tests

docs: $(SYNCED) ## regenerate the ER diagram in docs/schema.md from pipeline/core/schema.py
	$(RUN) python -m pipeline.docs

report: $(RUNTIME) $(BYTECODE) ## write build/report.html (analytics with charts) for the current warehouse
	$(RUN_ONLY) python -m pipeline report --config config.yaml --out build/report.html

notebooks: $(SYNCED) ## open the notebooks in JupyterLab (fetched into a throwaway environment on first use)
	$(RUN) --with jupyterlab jupyter lab notebooks/

bench: $(SYNCED) $(BYTECODE) ## pipeline vs hand-tuned and plain DuckDB builds and its parse alone, 3 runs each; a night on 1M and on 10M events of history (5 GB under build/bench); the light commands; writes docs/performance.md's current table (SONGS=50000 EVENTS=1000000)
	$(RUN) python -m tests.benchmarks.bench --songs $(SONGS) --events $(EVENTS) --update-docs

clean: ## remove build output and generated demo data (not the environment)
	rm -rf build data/demo

bench-scale: $(SYNCED) $(BYTECODE) ## the real sample, 15k songs, 1M and 10M events (about 5 GB under build/bench)
	$(RUN) python -m tests.benchmarks.bench --scale

bench-s3: $(SYNCED) ## objects/s fetching 20,000 song objects from a local S3 API, serial vs concurrent
	$(RUN) python tests/benchmarks/s3_fetch.py --objects $(or $(OBJECTS),20000)
