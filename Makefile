# Nightshift: `make demo` and `make test` work on a fresh clone with Python 3.11 and Java 17.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# the Spark driver's class-data-sharing archive (nightshift/jvm_archive.py): faster JVM start-ups
ARCHIVE_STAMP := $(VENV)/.spark-class-archive
# Exports the local environment (SQLite Airflow in .airflow/, lake in data/, Spark local[2]).
LOCALENV = eval "$$($(BIN)/python -m nightshift.localenv)"

.PHONY: help venv demo test test-fast test-stack ui bench clean secrets stack stack-down stack-status

help:
	@echo "make demo   - set up .venv, generate 6 days of HDFS logs, run the nightly DAG for each day, print a summary"
	@echo "make test   - run the test suite (unit, DAG integrity, end-to-end through Airflow/Spark/MLflow)"
	@echo "make ui     - start the Airflow UI (http://127.0.0.1:8080, login printed) and the MLflow UI (http://localhost:5000) on the local data"
	@echo "make secrets    - generate .env (mode 600) with every password and key of the stack (kept if it exists)"
	@echo "make stack      - start the production topology natively on 127.0.0.1 (Airflow on Postgres, MLflow with auth, Spark, champion server); state in .stack/"
	@echo "make stack-down - stop it"
	@echo "make bench  - ingest throughput: Spark (ingest + features, local[2]; local[1] at 4M) vs the single-process baseline and drain3, 1M and 4M lines"
	@echo "make clean  - remove generated data, Airflow home and caches (keeps .venv)"

venv: $(STAMP) $(ARCHIVE_STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 required, found {sys.version.split()[0]}"'
	@command -v java >/dev/null || { echo "Java 17 (or 21) is required for Spark: install a JDK"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(ARCHIVE_STAMP): $(STAMP) nightshift/jvm_archive.py
	$(BIN)/python -m nightshift.jvm_archive build
	@touch $(ARCHIVE_STAMP)

demo: venv
	@$(LOCALENV) && $(BIN)/python -m nightshift_datagen.demo

test: venv
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=20

test-fast: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m "not e2e"

# tests/test_stack.py: the production topology (own state dir, ports and Postgres databases)
test-stack: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m stack -x

ui: venv
	@$(LOCALENV) && $(BIN)/python -m nightshift_stack.ui

bench: venv
	$(BIN)/python bench/ingest_bench.py --sizes 1000000,4000000 --out bench/out --driver-memory 1g

secrets: venv
	@$(BIN)/python -m nightshift_stack secrets

stack: venv
	@$(BIN)/python -m nightshift_stack up

stack-down: venv
	@$(BIN)/python -m nightshift_stack down

stack-status: venv
	@$(BIN)/python -m nightshift_stack status

clean:
	rm -rf data .airflow .pytest_cache
