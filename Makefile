# The two commands of the README's quick start; both set up what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test lint bench

$(BIN)/textgym-ready: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/textgym-ready

quickstart: setup
	$(BIN)/python train.py --agent seqgan --budget default --out runs/quickstart-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(BIN)/python -m pytest tests --durations=15

# The linter and the type checker, with zero findings on the packages and train.py.
lint: setup
	$(BIN)/ruff check textgym agents discriminators train.py
	$(BIN)/mypy textgym agents discriminators train.py

bench: setup
	for b in env_throughput mc_rollout discriminator discriminator_info bleu oracle sb3_throughput infill paper_protocol profile_step; do $(BIN)/python bench/$$b.py --quick || exit 1; done
