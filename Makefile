# wagtail-smi: `make demo` runs the demo site with a worker; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ENV := DJANGO_DEBUG=1
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test venv migrate demo-content serve lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[demo,test]"
	touch $@

migrate: venv
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput

demo-content: migrate
	$(DEMO_ENV) $(BIN)/python manage.py smi_demo_content

# The web server and a django-q2 worker side by side; one Ctrl-C stops both.
serve: venv
	@echo "Serving on http://$(HOST):$(PORT)/ with a worker. Ctrl-C stops both."
	@$(DEMO_ENV) bash -c 'trap "kill 0" EXIT; \
		$(BIN)/python manage.py qcluster & \
		$(BIN)/python manage.py runserver $(HOST):$(PORT)'

demo: demo-content serve

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) demo_site/var .pytest_cache
