# One command to set up and run the demo, one to run the tests. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test browser lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Only the virtual environment; then `source .venv/bin/activate` for every `aoc` command.
install: $(STAMP)
	@echo "AOC is installed in $(VENV): run 'source $(VENV)/bin/activate', then 'aoc --help'"

demo: $(STAMP)
	$(BIN)/aoc demo

# The web UI's browser test drives Debian's chromium (Playwright never downloads a browser here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && apt-get install -y -q chromium; \
		else \
			echo "the browser test needs Debian's chromium: sudo apt-get install chromium"; exit 1; \
		fi; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 3 --dist worksteal

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/normalizer.py
	$(BIN)/python bench/siem.py

clean:
	rm -rf $(VENV) .aoc-data .pytest_cache .ruff_cache
