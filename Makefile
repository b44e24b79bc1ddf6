# Two commands on a fresh machine with Python 3.11 and make:
#   make run   -> set up .venv and run the main job (samepage up)
#   make test  -> set up .venv with test extras and run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint screenshots browser java install install-test notebook mlflow-ui bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the pins change; a second `make` is a no-op.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)
install-test: $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/samepage up

test: lint browser java
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium (Playwright's own download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make test: chromium is missing; install it with: sudo apt-get install chromium" >&2; exit 1; fi; }

# The Spark test runs pyspark in local mode, which needs a Java runtime (Debian's Java 17).
java:
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	  else echo "make test: java is missing; install it with: sudo apt-get install openjdk-17-jre-headless" >&2; exit 1; fi; }

# Refresh the committed screenshots of the pages (docs/screenshots/) from a browser-test run.
screenshots: $(TEST_STAMP) browser
	SAMEPAGE_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/serving/test_browser.py

# Style, types and the architecture's import rules (configured in pyproject.toml).
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# JupyterLab is only for people at a screen: kept out of the pinned test set, pinned here.
notebook: $(TEST_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt jupyterlab==4.6.6
	$(BIN)/jupyter lab notebooks/

# The workspace's tracking store, or the one SAMEPAGE_MLFLOW_TRACKING_URI names.
mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri "$${SAMEPAGE_MLFLOW_TRACKING_URI:-sqlite:///$${SAMEPAGE_HOME:-workspace}/mlflow.db}" --port 5000

bench: $(TEST_STAMP)
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) workspace
