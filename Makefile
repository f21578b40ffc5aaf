# Two commands for a fresh machine with Python 3.11+:
#   make demo   runs the whole job on simulated data, in ./.propensity
#   make test   runs lint, types, the import contract, the docs build and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Real public data sets beside the checkout (tests that need them skip where absent).
export PROPENSITY_SHARED_DATA ?= $(abspath ../shared/data)
DEMO_DIR ?= .propensity

.PHONY: demo test lint docs audit install lock clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark,fast]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	PROPENSITY_DATA_DIR=$(DEMO_DIR) ./scripts/demo.sh

# lint-imports: the architecture's import contract ([tool.importlinter] in pyproject.toml).
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The user's guide; --strict turns a broken link, a missing anchor or a page outside the
# navigation into a failure. Tables of features, settings and routes are generated (scripts/docs_hooks.py).
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: lint docs
	$(BIN)/python -m pytest -n 2 --dist loadgroup; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# Known vulnerabilities in the installed dependencies (pip-audit against PyPI's feed). Fails on
# a vulnerability, and when nothing could be audited; counts the packages it could not check.
audit: $(INSTALLED)
	$(BIN)/python scripts/audit.py

# Re-resolve the pinned versions after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/propensity-lock && $(PYTHON) -m venv /tmp/propensity-lock
	/tmp/propensity-lock/bin/pip install --quiet '.[dev,spark,fast]'
	/tmp/propensity-lock/bin/pip freeze --exclude propensity > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO_DIR) site
