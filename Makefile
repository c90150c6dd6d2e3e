# The two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 --dist worksteal
# `make test` leaves out the tests marked slow (the larger zoo models, whose
# families a quicker test covers, and the graph tests' reruns under JAX);
# `make test-all` runs every test.
MARKS ?= not slow

.PHONY: setup data demo test test-all bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP) data

# Debian's dataset-fashion-mnist gives real data offline; skipped when not root or no apt.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  echo "fashion-mnist: present in /usr/share/datasets/fashion-mnist"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) \
	  && echo "fashion-mnist: installed dataset-fashion-mnist" \
	  || echo "fashion-mnist: apt-get install dataset-fashion-mnist failed; skipped (sklearn digits are used instead)"; \
	else \
	  echo "fashion-mnist: skipped installing dataset-fashion-mnist (needs root and apt-get); sklearn digits are used instead"; \
	fi

demo: setup
	$(VENV)/bin/tfprune-survey demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) -m "$(MARKS)" tests

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests

bench: setup
	$(PY) benchmarks/graph_and_surgery.py

clean:
	rm -rf $(VENV) *.egg-info demo_results
