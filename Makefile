# Two entry points for a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv themselves. On a machine without CUDA the small CPU torch
# wheel is installed first so that `torch>=2.3` does not pull a multi-GB CUDA build.
# `make test` runs every test (the slow end-to-end ones included) and the library's docstring
# examples, as CI does (.ci/run); `make test-fast` (under a minute) skips the tests marked slow and runs the
# rest on two pytest-xdist workers.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export MUJOCO_GL ?= egl

.PHONY: venv demo test test-fast bench weights clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: installing the default torch build"; \
	else \
		echo "no CUDA: installing the CPU torch wheel"; \
		$(BIN)/pip install -q "torch==2.13.0"; \
	fi
	$(BIN)/pip install -q -e ".[dev,text,tensorboard,bench,kitchen,metaworld]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/vip-rl demo

test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

bench: venv
	$(BIN)/python benchmarks/run_all.py

weights: venv
	$(BIN)/python -m vip_rl.weights_recipe

clean:
	rm -rf $(VENV) runs
