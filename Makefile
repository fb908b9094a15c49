# Two commands on a fresh machine: `make tour` and `make test`. Each sets itself up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: tour test test-slow check bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,docs,progress,data]" "setuptools>=68"
	touch $(STAMP)

tour: $(STAMP)
	$(PY) -m refscore tour --out tour-output

test: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir site

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

check: $(STAMP)
	$(PY) -m refscore check

bench: $(STAMP)
	$(PY) -m refscore bench --out bench-output

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site tour-output bench-output .hypothesis
