# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv clean screenshots

$(BIN)/clinsum: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/clinsum

demo: venv
	$(BIN)/clinsum run

test: venv
	$(BIN)/ruff check clinsum tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# The README's report screenshots, made by the browser test from the bundled fixtures.
screenshots: venv
	CLINSUM_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_report_browser.py

clean:
	rm -rf $(VENV) clinsum.db clinsum-demo
