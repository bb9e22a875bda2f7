# Two commands for a fresh machine: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run test test-postgres smoke screenshots lint bench clean system-packages assets

# Debian packages the IVR and its tests need: ffmpeg (voice messages → PCM), espeak-ng (prompts), sox (audio).
# Quick when they are there: a dpkg-query per package, no apt-get.
SYSTEM_PACKAGES := ffmpeg espeak-ng sox
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The web-chat test walks the page in Debian's Chromium (driven by Playwright, never `playwright install`), with a
# Chinese font so screenshots are legible.
test test-postgres screenshots: SYSTEM_PACKAGES += chromium fonts-wqy-microhei

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Gridline needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --editable .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --editable '.[test]'
	@touch $@ $(VENV)/.installed-run

# The console's browser code (Leaflet, its marker clusters, htmx), pinned by package-lock.json from the npm registry and
# served by Gridline itself; a wheel built after this carries it.
ASSETS := admin/static/node_modules/.package-lock.json
$(ASSETS): admin/static/package.json admin/static/package-lock.json
	npm ci --prefix admin/static --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@
assets: $(ASSETS)

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

run: system-packages $(ASSETS) $(VENV)/.installed-run
	$(BIN)/gridline init --demo --demo-staff  # the console accounts are printed once, and kept in var/demo/staff.txt
	$(BIN)/gridline ivr prompts  # the 12319 hotline's voice; only new or changed prompts are spoken again
	$(BIN)/gridline serve

test: system-packages $(ASSETS) $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-postgres: system-packages $(ASSETS) $(VENV)/.installed-test
	GRIDLINE_TEST_DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest

# `make run` on a machine that never ran `make test`: a fresh venv with `pip install .` and no extras, in a temporary
# folder with its own database and ports; the demo city, the server, its pages and a web-chat report, a clean SIGTERM.
smoke: system-packages $(ASSETS)
	$(PYTHON) .ci/smoke.py

# The console's pages in Chromium, a full day of the case loop, written to docs/console/ (docs/console.md).
screenshots: system-packages $(ASSETS) $(VENV)/.installed-test
	GRIDLINE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/admin/console/test_full_day.py tests/admin/console/test_field_day.py \
	  tests/admin/console/test_wall.py tests/admin/console/test_evaluation_pages.py

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache admin/static/node_modules
