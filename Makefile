# The README contract: `make demo` and `make test` work on a fresh machine.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.nanoseg-installed

.PHONY: demo test test-slow lint clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-cpu.txt -e '.[dev,fast,napari,napari-test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nanoseg demo --out demo-output

# one pytest run, one count: the tests and every docstring example (>>>) of the package
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider --doctest-modules tests src/nanoseg

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) demo-output build *.egg-info
