# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# Every version the venv gets, the test extra's included, is pinned with its hashes in $(LOCK).
LOCK   := requirements.lock
# Editing pyproject.toml or the lock changes the stamp's name, so the next `make` reinstalls.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test lint test-sqlite test-postgres install lock browser bench clean shell

# The locked versions exactly (pip refuses any file whose hash is not in the lock), then
# Consentry itself, editable, with no dependency of its own: they all came from the lock.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r $(LOCK)
	$(PIP) --no-deps -e .
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

## Regenerate requirements.lock from pyproject.toml (with the test extra) after editing its
## dependencies; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release allowed.
## uv lives in a throwaway venv ($(LOCKVENV)), never in .venv. The exact command:
##   uv pip compile pyproject.toml --extra test --python-version 3.11 \
##     --python-platform x86_64-unknown-linux-gnu --generate-hashes -o requirements.lock
LOCKVENV ?= /tmp/lockvenv
LOCK_ARGS ?=
lock:
	test -x $(LOCKVENV)/bin/uv || { $(PYTHON) -m venv $(LOCKVENV) && $(LOCKVENV)/bin/python -m pip install -q "uv==0.13.9"; }
	$(LOCKVENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --generate-hashes --quiet $(LOCK_ARGS) -o $(LOCK)

## Start the demo: SQLite, sandbox provider, web + worker on http://127.0.0.1:$(PORT)
run: install
	CONSENTRY_DEMO=1 $(BIN)/consentry migrate --noinput -v0
	CONSENTRY_DEMO=1 $(BIN)/consentry demo --port $(PORT)
	CONSENTRY_DEMO=1 $(BIN)/consentry serve --port $(PORT)

## A shell with the `consentry` command (it lives in .venv/bin/) on its PATH
shell: install
	@echo "consentry is on this shell's PATH (exit to leave)"; PATH="$(CURDIR)/$(BIN):$$PATH" $${SHELL:-/bin/sh}

## The whole suite on SQLite, then again on PostgreSQL 15
test: install
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

# The browser tests drive the pages in Chromium; without one they are skipped, loudly.
browser:
	@scripts/chromium.sh >/dev/null || echo "!! Chromium unavailable: the browser tests will be skipped" >&2

## Lint, formatting, types and import contracts (the first step of `make test`, and the pre-commit hook)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-sqlite: install browser lint
	@echo "== tests on SQLite"
	$(BIN)/pytest

# The PostgreSQL server the suite starts (scripts/postgres.sh, port $$CONSENTRY_PG_PORT, default 54329)
# is stopped when it ends, passed, failed or interrupted; one that was already running is left alone.
test-postgres: install browser
	@echo "== tests on PostgreSQL"
	@export CONSENTRY_PG_OWNER=make-test-$$$$; trap 'scripts/postgres.sh stop' EXIT; trap 'exit 130' INT TERM; \
	url=$$(scripts/postgres.sh) ; rc=$$? ; \
	if [ $$rc -ne 0 ]; then \
	  echo "!! PostgreSQL unavailable: the suite ran on SQLite only" >&2; \
	  if [ "$${CONSENTRY_REQUIRE_POSTGRES:-0}" = 1 ]; then exit 1; fi; exit 0; \
	fi; \
	DATABASE_URL=$$url $(BIN)/pytest

bench: install
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/broadcast.py
	$(BIN)/python bench/dispatch.py --postgres
	$(BIN)/python bench/races.py
	$(BIN)/python bench/staff_screens.py

clean:
	rm -rf $(VENV) var .hypothesis
