# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test test-sqlite test-postgres install browser bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test]"
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

## Start the demo: SQLite, sandbox provider, web + worker on http://127.0.0.1:$(PORT)
run: install
	CONSENTRY_DEMO=1 $(BIN)/consentry migrate --noinput -v0
	CONSENTRY_DEMO=1 $(BIN)/consentry demo --port $(PORT)
	CONSENTRY_DEMO=1 $(BIN)/consentry serve --port $(PORT)

## The whole suite on SQLite, then again on PostgreSQL 15
test: install
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

# The browser tests drive the pages in Chromium; without one they are skipped, loudly.
browser:
	@scripts/chromium.sh >/dev/null || echo "!! Chromium unavailable: the browser tests will be skipped" >&2

test-sqlite: install browser
	$(BIN)/ruff check src tests bench
	@echo "== tests on SQLite"
	$(BIN)/pytest

test-postgres: install browser
	@echo "== tests on PostgreSQL"
	@url=$$(scripts/postgres.sh) ; rc=$$? ; \
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

clean:
	rm -rf $(VENV) var .hypothesis
