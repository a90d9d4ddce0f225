# etl: `make etl` runs the pipeline on etl.toml; `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make etl` installs etl with the extras a user's runs may need (postgres, stat, report); `make setup` and
# `make test` add the tests' tools (dev) and the Spark engine (spark: pyspark builds from its source archive,
# 20-25 s even from uv's cache, which a first `make etl` need not wait for).
RUN_EXTRAS := postgres,stat,report
EXTRAS := $(RUN_EXTRAS),dev,spark
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# Jupyter, for `make notebooks` only.
EXPLORE_STAMP := $(VENV)/.explore-installed
# Jupyter listens here; JUPYTER_IP=0.0.0.0 to reach it from outside a container.
JUPYTER_IP ?= 127.0.0.1

.DEFAULT_GOAL := help
.PHONY: help setup etl test test-fast bench lint format notebooks clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# uv installs the packages (seconds where pip takes minutes); pip only installs uv itself into the venv.
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv
	$(UV) -e '.[$(RUN_EXTRAS)]'
	@# Bytecode of what every etl process imports, compiled once: where PYTHONDONTWRITEBYTECODE is set (as on the
	@# machines etl is developed on), each process compiled them anew (numpy, pyarrow, polars, duckdb: 1.8 -> 0.7 s).
	SITE=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	$(BIN)/python -m compileall -q -j 0 etl $$SITE/numpy $$SITE/pyarrow $$SITE/polars $$SITE/duckdb \
	  $$SITE/msgspec $$SITE/psutil $$SITE/tqdm > /dev/null
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(UV) -e '.[$(EXTRAS)]'
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install etl with every extra (postgres, stat, report, spark, dev)

etl: $(RUN_STAMP) ## Run the whole pipeline on etl.toml (generates sample inputs when missing)
	$(BIN)/etl --config etl.toml run

test: $(STAMP) ## Run the test suite (slow tests included), one worker per core, a test module per worker
	$(BIN)/pytest -n auto --dist loadfile

test-fast: $(STAMP) ## Run the tests, skipping those marked slow
	$(BIN)/pytest -n auto --dist loadfile -m "not slow"

bench: $(STAMP) ## Run the benchmarks; tables go to benchmarks/results/
	$(UV) -e '.[$(EXTRAS),bench]'
	$(BIN)/python -m benchmarks

lint: $(STAMP) ## Check code style with ruff
	$(BIN)/ruff check etl tests benchmarks
	$(BIN)/ruff format --check etl tests benchmarks

format: $(STAMP) ## Reformat the code with ruff
	$(BIN)/ruff check --fix etl tests benchmarks
	$(BIN)/ruff format etl tests benchmarks

$(EXPLORE_STAMP): $(STAMP)
	$(UV) -e '.[$(EXTRAS),explore]'
	touch $(EXPLORE_STAMP)

notebooks: $(EXPLORE_STAMP) ## Start Jupyter Lab on notebooks/ (installs it into .venv the first time)
	$(BIN)/jupyter lab --no-browser --allow-root --ip $(JUPYTER_IP) notebooks/

clean: ## Remove everything produced under data/ (keeps .venv)
	find data -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
