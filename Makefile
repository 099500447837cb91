# NER Studio. `make run` starts the product; `make test` runs the tests. Both set everything up.
SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Django 6 needs Python >= 3.12: take pyenv's 3.13 when the default python3 is older.
PYTHON ?= $(shell for p in python3.13 python3.12; do \
	  PYENV_VERSION=3.13.0 $$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { echo "PYENV_VERSION=3.13.0 $$p"; exit; }; \
	done; echo python3)

.PHONY: run test lint typecheck migrate seed clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

migrate: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput -v0

seed: migrate
	DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo

run: seed
	@echo ""
	@echo "  NER Studio is starting on http://127.0.0.1:$(PORT)/"
	@echo "  Sign in: use 'Email me a sign-in code' with admin@demo.nerstudio.test (org admin)"
	@echo "           or member@demo.nerstudio.test (member); the sign-in code (like ABCD-EFGH) is printed below."
	@echo "  Or create a new account with any email to try onboarding. Stop with Ctrl-C."
	@echo ""
	DEBUG=$${DEBUG:-true} NERSTUDIO_PUBLIC_URL=$${NERSTUDIO_PUBLIC_URL:-http://127.0.0.1:$(PORT)} \
	  NERSTUDIO_EGRESS_ALLOW_LOOPBACK=$${NERSTUDIO_EGRESS_ALLOW_LOOPBACK:-true} \
	  $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: $(STAMP)
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles
