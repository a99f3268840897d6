# The two commands of the README:
#   make run    install into .venv and run the app (web + workers) on the embedded default
#   make test   install into .venv and run lint, types and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

# bash, so that a pipe fails when pip does (pipefail), not only when the filter after it does.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: run test install system-packages lint types pytest fuzz chromium mlflow-server peers-venv test-venvs clean

run: $(STAMP)
	$(BIN)/python manage.py serve

# mypy (about a minute on a fresh clone) runs beside the suite, not before it: CI's budget is the wall clock.
test: $(STAMP) chromium test-venvs lint
	@$(MAKE) --no-print-directory -j2 types pytest

install: $(STAMP)

# Each step says what it installs; pip's own lines (hundreds, warnings among them) go to $(VENV)/install.log, its
# errors to the console as well, and on a terminal one line counts the packages as pip goes through them.
PIP_LOG := $(VENV)/install.log
# No byte-compiling at install: of the ~170 packages only the modules a process imports get compiled, on first
# import (an install took 28 s instead of 69 s with the wheels at hand).
PIP_FLAGS ?= --no-compile
PIP = $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off $(PIP_FLAGS)
PIP_PROGRESS = 2>&1 | tee -a $(PIP_LOG) | awk 'BEGIN { tty = system("test -t 1") == 0 } \
	/^(Collecting|Processing|Requirement already satisfied|Obtaining)/ { n++; if (tty) { printf "\r  packages looked at: %d\033[K", n; fflush() } next } \
	/^Installing collected packages/ { if (tty) printf "\r\033[K"; printf "  unpacking and installing (%d packages looked at)…\n", n; fflush(); next } \
	/^ERROR/ { if (tty) printf "\r\033[K"; print; next } \
	END { if (tty && n) printf "\r\033[K" }' \
	|| { echo "pip failed: its whole output is in $(PIP_LOG)"; exit 1; }

# Debian packages: python-ldap compiles against libldap2-dev and libsasl2-dev; the LDAP tests start slapd (with
# ldap-utils' slapadd) on a free port; the dossier's PDF is set in DejaVu. Installed when missing (root on these
# machines); say what to run otherwise.
SYSTEM_PACKAGES := libldap2-dev libsasl2-dev slapd ldap-utils fonts-dejavu-core
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	test -z "$$missing" || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "- Debian packages: $$missing"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null); \
		else echo "Missing Debian packages: run 'sudo apt-get install -y $$missing'"; exit 1; fi; }

$(STAMP): pyproject.toml | system-packages
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Enclave needs Python 3.11 (found %d.%d)" % sys.version_info[:2])'
	@echo "Installing Enclave into $(VENV) (once, and again when pyproject.toml changes; pip's log: $(PIP_LOG))"
	@test -x $(BIN)/python || { echo "- creating the virtual environment"; $(PYTHON) -m venv $(VENV); }
	@: > $(PIP_LOG)
	@echo "- pip itself"
	@$(PIP) --upgrade pip $(PIP_PROGRESS)
	@# torch first and alone, pinned, so the CPU build on this machine is used and no CUDA build is pulled.
	@echo "- torch (CPU build): a few minutes the first time"
	@$(PIP) "torch==2.13.0" $(PIP_PROGRESS)
	@echo "- Django, Celery, transformers, the test tools and the rest: a minute or two the first time"
	@$(PIP) -e ".[dev]" $(PIP_PROGRESS)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)
	@echo "Installed."

# The peers' own libraries (Argilla, the Label Studio SDK) write the peer readers' test inputs; they would change
# numpy in .venv, so they get a venv of their own, installed once per pinned set (about half a minute).
PEERS_VENV := .venv-peers
PEERS_REQUIREMENTS := tests/annotation/peers_make/requirements.txt
PEERS_STAMP := $(PEERS_VENV)/.installed-$(shell cat $(PEERS_REQUIREMENTS) | sha256sum | cut -c1-16)
peers-venv: $(PEERS_STAMP)
$(PEERS_STAMP): $(PEERS_REQUIREMENTS)
	@echo "Installing the peers' libraries into $(PEERS_VENV) (once; pip's log: $(PEERS_VENV)/install.log)"
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	@$(PEERS_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar off $(PIP_FLAGS) \
		-r $(PEERS_REQUIREMENTS) > $(PEERS_VENV)/install.log 2>&1 \
		|| { echo "pip failed: its whole output is in $(PEERS_VENV)/install.log"; exit 1; }
	@rm -f $(PEERS_VENV)/.installed-*
	@touch $(PEERS_STAMP)

# The test suite's own side venvs, side by side (each about half a minute the first time, nothing after).
test-venvs:
	@$(MAKE) --no-print-directory -j2 mlflow-server peers-venv

# Browser tests drive Debian's Chromium; install it when missing (root on these machines).
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
		else echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need it)"; exit 1; fi; }

# The MLflow tracking server that tests/training/test_mlflow.py starts: the full mlflow of the client's pinned version
# (mlflow-skinny in pyproject.toml), in a virtual environment of its own, since its pins (pyarrow<26, gunicorn<27)
# conflict with Enclave's. Installed once per version; the product never runs it.
MLFLOW_VERSION := $(shell sed -n 's/^ *"mlflow-skinny==\([^"]*\)".*/\1/p' pyproject.toml)
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-$(MLFLOW_VERSION)
mlflow-server: $(MLFLOW_STAMP)

$(MLFLOW_STAMP): BIN := $(MLFLOW_VENV)/bin
$(MLFLOW_STAMP): PIP_LOG := $(MLFLOW_VENV)/install.log
$(MLFLOW_STAMP):
	@test -n "$(MLFLOW_VERSION)" || { echo "pyproject.toml pins no mlflow-skinny==VERSION"; exit 1; }
	@echo "Installing the MLflow $(MLFLOW_VERSION) tracking server for the tests into $(MLFLOW_VENV) (once per version)"
	@rm -rf $(MLFLOW_VENV) && $(PYTHON) -m venv $(MLFLOW_VENV)
	@: > $(PIP_LOG)
	@$(PIP) "mlflow==$(MLFLOW_VERSION)" $(PIP_PROGRESS)
	@touch $@
	@echo "Installed."

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy .

# Three processes (pytest-xdist), each with its own test database, Redis database and data dir
# (enclave/settings/test.py); worksteal hands a finished process another's waiting tests. Three on two cores: much
# of the suite waits on the workers, servers and browser it starts, and a third process fills that wait (the whole
# suite 769 s against 915 s with two, docs/PERFORMANCE.md). The slowest tests are listed at the end, to keep CI's
# budget in view. PYTEST_PROCESSES=0 runs it in this one process.
PYTEST_PROCESSES ?= 3
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_PROCESSES) --dist worksteal --durations=25

# The API fuzzed against its schema for longer than the suite does (tests/enclave/test_api_fuzz.py; the suite
# runs it with a few examples per operation). Needs PostgreSQL and Redis, as .ci/run sets them.
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	ENCLAVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ENCLAVE_FUZZ_COVERAGE=annotator,reviewer,data_lead,project_admin,staff \
		$(BIN)/pytest -p no:cacheprovider -s tests/enclave/test_api_fuzz.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) var tests/artifacts
