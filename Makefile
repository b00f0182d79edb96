# Two commands on a fresh machine: `make run` (the whole thing, with demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BIND ?= 127.0.0.1:8000
# the demo runs with the built-in sandbox platforms, reached at the address the server listens on
run demo: export SANDBOX_ENABLED ?= 1
run demo: export SANDBOX_BASE_URL ?= http://$(BIND)

.PHONY: run test lint bench install install-dev migrate demo lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements.lock
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.lock
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input -v0

demo: migrate
	$(BIN)/python manage.py load_demo

run: demo
	@echo "Admin: http://$(BIND)/admin/  logins: admin, integrator, finance, accountant (password: $${DEMO_PASSWORD:-ledgerlink-demo})"
	$(BIN)/python manage.py sync_schedules
	$(BIN)/python manage.py serve --bind $(BIND)

lint: install-dev
	$(BIN)/ruff check .

test: install-dev lint
	$(BIN)/python -m pytest

# Benchmarks: each prints its figures against a baseline measured in the same run (see README, Commands).
bench: install-dev
	$(BIN)/python tests/bench/bench_csv_import.py $(or $(ROWS),100000)
	$(BIN)/python tests/bench/bench_sync.py $(or $(ROWS),100000) $(or $(PUSH),5000)
	$(BIN)/python tests/bench/bench_api_bulk.py 10 1000
	$(BIN)/python tests/bench/bench_reconcile.py $(or $(RECON),1000000)
	$(BIN)/python tests/bench/bench_admin_queue.py $(or $(QUEUE),1000000)
	$(BIN)/python tests/bench/bench_webhooks.py 300 10

# Re-resolve the pinned versions after changing pyproject.toml.
lock: $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -q --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
