# The two commands of the README:
#   make run    install into .venv and run the app (web + workers) on the embedded default
#   make test   install into .venv and run lint, types and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: run test install lint types pytest fuzz chromium clean

run: $(STAMP)
	$(BIN)/python manage.py serve

test: $(STAMP) chromium lint types pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Enclave needs Python 3.11 (found %d.%d)" % sys.version_info[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone, pinned, so the CPU build on this machine is used and no CUDA build is pulled.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Browser tests drive Debian's Chromium; install it when missing (root on these machines).
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
		else echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need it)"; exit 1; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy .

# The slowest tests are listed at the end, to keep CI's budget in view.
pytest: $(STAMP)
	$(BIN)/pytest --durations=25

# The API fuzzed against its schema for longer than the suite does (tests/enclave/test_api_fuzz.py; the suite
# runs it with a few examples per operation). Needs PostgreSQL and Redis, as .ci/run sets them.
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	ENCLAVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ENCLAVE_FUZZ_COVERAGE=annotator,reviewer,data_lead,project_admin,staff \
		$(BIN)/pytest -p no:cacheprovider -s tests/enclave/test_api_fuzz.py

clean:
	rm -rf $(VENV) var tests/artifacts
