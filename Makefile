# wagtail-smi: `make demo` runs the demo site with a worker; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in answers, emails and the dummy checkout point here: the port the demo serves on.
SMI_PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)
# The demo upscales with Real-ESRGAN on this machine (SMI_UPSCALER=local for Pillow only).
SMI_UPSCALER ?= realesrgan
DEMO_ENV := DJANGO_DEBUG=1 SMI_PUBLIC_BASE_URL=$(SMI_PUBLIC_BASE_URL) SMI_UPSCALER=$(SMI_UPSCALER)
# Debian's libraries that the Real-ESRGAN extension links.
REALESRGAN_LIBS := libomp5 libvulkan1

# The newest supported line (Django 6.x) needs Python 3.12+.
PYTHON_LATEST ?= $(shell PYENV_VERSION=3.12.1 pyenv which python 2>/dev/null || command -v python3.12 || command -v python3.13)
VENV_LATEST ?= .venv-latest

.PHONY: demo test test-latest venv system-libs migrate demo-content serve lint bench load messages clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[demo,test,ai]"
	touch $@

# Installs REALESRGAN_LIBS with apt-get when they are missing (as root, else through sudo);
# never upgrades them. Elsewhere it only says what the realesrgan upscaler needs.
system-libs:
	@missing=""; \
	for package in $(REALESRGAN_LIBS); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" \
			|| missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "The realesrgan upscaler needs$$missing (libomp and the Vulkan loader)."; exit 0; \
	fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	echo "Installing$$missing for the realesrgan upscaler"; \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing"; \
	$$install >/dev/null || { $$sudo apt-get update -qq && $$install >/dev/null; }

migrate: venv system-libs
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput

demo-content: migrate
	$(DEMO_ENV) $(BIN)/python manage.py smi_schedules
	$(DEMO_ENV) $(BIN)/python manage.py smi_demo_content

# The web server and a django-q2 worker side by side; one Ctrl-C stops both.
serve: venv system-libs
	$(DEMO_ENV) HOST=$(HOST) PORT=$(PORT) $(BIN)/python demo_site/serve.py

demo: demo-content serve

test: venv system-libs
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite on the newest Python/Django line (no browser tests: the main run has them).
test-latest: system-libs
	@test -n "$(PYTHON_LATEST)" || { echo "No Python 3.12+ found for the Django 6 run"; exit 1; }
	test -x $(VENV_LATEST)/bin/python || $(PYTHON_LATEST) -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade -e ".[demo,test,ai]"
	$(VENV_LATEST)/bin/python -c "import django, sys; print('Python', sys.version.split()[0], 'Django', django.get_version())"
	$(VENV_LATEST)/bin/python -m pytest -m "not browser" $(PYTEST_ARGS)

# What CI checks before the tests (and .pre-commit-config.yaml before a commit): the
# linter, the formatter, the layers (import-linter) and the templates (djlint).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/djlint wagtail_smi/templates --lint

# The upscaler figures, then the gating bench (docs/performance.md, "Gating bench"): its
# last line is "bench: N of M goals met" and it fails when a goal is missed. PostgreSQL
# must be running (BENCH_ARGS="--db sqlite" without it; "--quick" for a smoke run).
bench: venv system-libs
	$(BIN)/python bench/upscalers.py
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A live shop under load and generated hostile input (loadtest/run.py): gunicorn, two
# qcluster workers, PostgreSQL and Redis (both must be running); schemathesis with the
# shop's OpenAPI document, then 200 locust clients. LOAD_ARGS adds options (--run-time 120).
load: venv
	$(BIN)/python -m pip install --quiet -e ".[load]"
	$(BIN)/python loadtest/run.py --stack postgres-redis --fuzz --load $(LOAD_ARGS)

# Translations: the package's messages into the French and German catalogues, then compiled
# (the .mo files are committed, so the wheel ships them; tests/test_pages_i18n.py checks
# that they are complete and in step). Needs GNU gettext (apt-get install -y gettext).
messages: venv
	cd wagtail_smi && ../$(BIN)/django-admin makemessages -l fr -l de --add-location=file --no-obsolete
	cd wagtail_smi && ../$(BIN)/django-admin compilemessages

clean:
	rm -rf $(VENV) $(VENV_LATEST) demo_site/var .pytest_cache
