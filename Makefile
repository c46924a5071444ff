# Portail Famille — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV := PORTAIL_ENV=development

.PHONY: run test lint bench peak clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

## run: install, migrate, load demo data on an empty database, start web + worker + scheduler
run: $(STAMP)
	$(DEV) $(BIN)/flask --app app db upgrade
	$(DEV) $(BIN)/flask --app app demo load --if-empty
	$(DEV) $(BIN)/python -m portail.devserver

## test: the whole suite (PORTAIL_STRICT=1 turns a missing service into a failure)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) instance .pytest_cache

## bench: page weight, SQL queries and time ratios; the planning at scale; the digests; the billing run; the registers; the headcounts (see bench/)
bench: $(STAMP)
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/planning.py
	$(BIN)/python bench/digest.py
	$(BIN)/python bench/billing.py
	$(BIN)/python bench/registers.py
	$(BIN)/python bench/headcounts.py

## peak: the opening-day benchmark on PostgreSQL and the production stack (locust; a few minutes): make peak PARENTS=250
PARENTS ?= 250
peak: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/peak.py --parents $(PARENTS)
