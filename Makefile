# Every target does its own set-up: the virtualenv is created and installed on first use, reused after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install conformance browser test unit lint screenshots demo demo-flask bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starlette's own tests (its sdist, for the release installed), run by tests/e2e/test_starlette_suite.py.
STARLETTE_SUITE := $(VENV)/starlette-suite
$(STARLETTE_SUITE)/.ready: $(STAMP)
	rm -rf $(STARLETTE_SUITE) && mkdir -p $(STARLETTE_SUITE)/download
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: -d $(STARLETTE_SUITE)/download \
		"starlette==$$($(BIN)/python -c 'import starlette; print(starlette.__version__)')"
	tar -xzf $(STARLETTE_SUITE)/download/starlette-*.tar.gz -C $(STARLETTE_SUITE) --strip-components=1
	touch $@

conformance: $(STARLETTE_SUITE)/.ready

# The browser tests drive Debian's Chromium; install it when it is missing (CI runs as root).
browser:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}

lint: $(STAMP)
	$(BIN)/ruff check src tests example_app benchmarks
	$(BIN)/ruff format --check src tests example_app benchmarks
	$(BIN)/mypy

test: lint browser conformance
	$(BIN)/pytest

# The fast part: every unit test, in-process, no server (tests/e2e/ holds the real-server suites).
unit: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/e2e

# The README's screenshots, taken by the browser tests.
screenshots: $(STAMP) browser
	SCREENSHOTS_DIR=$(CURDIR)/docs $(BIN)/pytest tests/e2e/test_browser.py \
		tests/e2e/test_cli.py::test_serve_edit_break_see_the_error_page_fix_and_stop \
		tests/e2e/test_live.py::test_a_page_follows_edits_shows_a_broken_one_and_recovers_by_itself

demo: $(STAMP)
	@echo "Serving example_app with reloading on: http://127.0.0.1:8000/"
	@echo "Edit example_app/greeting.py (the leaf) and refresh; status at http://127.0.0.1:8000/__reload"
	RELOAD_MIDDLEWARE=1 RELOAD_MIDDLEWARE_URL=http://127.0.0.1:8000 $(BIN)/uvicorn example_app.asgi:app --host 127.0.0.1 --port 8000

demo-flask: $(STAMP)
	@echo "Serving example_app's Flask app under gunicorn with reloading on: http://127.0.0.1:8001/"
	@echo "Edit example_app/greeting.py and refresh; status at http://127.0.0.1:8001/__reload"
	RELOAD_MIDDLEWARE=1 $(BIN)/gunicorn example_app.wsgi:app --bind 127.0.0.1:8001 --worker-class gthread --threads 8

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Side by side with the peers, in one run; writes benchmarks/results.md and results.png.
bench: $(BENCH_STAMP) browser
	@command -v wrk >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; \
	}
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
