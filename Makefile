# `make demo` and `make test` set everything up on a fresh machine: a .venv with the package
# installed (editable) with its CPU TensorFlow and test extras, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet -e '.[cpu,test]'
	touch $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python examples/basic_unilm_reverse_digits.py

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cpu,bench]'
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/attention.py
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info
