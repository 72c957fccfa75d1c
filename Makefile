# Every target builds the locked environment first. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# uv must use the machine's Python and never try to download one (there is no internet at run time).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1

.PHONY: help env demo-data demo-batch2 demo test server serve bench bench-env-fastai clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

env: $(VENV)/.synced ## create .venv from uv.lock (installs uv with pip if missing)

$(VENV)/.synced: uv.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@if command -v uv >/dev/null 2>&1; then uv sync --frozen; else python3 -m uv sync --frozen; fi
	@touch $@

demo-data: env ## the demo dataset (data/raw), its source task (data/source) and the demo backbone, when absent
	$(PY) -m tasks.demo_data
	$(PY) -m tasks.pretrain

demo-batch2: env ## add a second batch of new specimens to data/raw (to see scheduled retraining react)
	$(PY) -m tasks.demo_data --batch 2

demo: env demo-data ## run the `finetune` Prefect flow locally (every stage through DVC), print the test metrics
	$(PY) -m flows.finetune

test: env ## run the whole test suite (what CI runs)
	$(PY) -m pytest

server: env ## start a local Prefect server on 127.0.0.1:4200 (embedded SQLite)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

serve: env ## register and serve the deployments finetune/default and retrain/nightly (needs `make server`)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(PY) -m flows.serve

bench: env demo-data ## run the benchmarks in benchmarks/ (each prints our figure, a baseline and the ratio)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

bench-env-fastai: ## the benchmark-only fastai environment (benchmarks/envs/fastai/.venv) for bench_recipe.py
	cd benchmarks/envs/fastai && UV_PROJECT_ENVIRONMENT=$(CURDIR)/benchmarks/envs/fastai/.venv uv sync --frozen

clean: ## remove generated data, models and reports (keeps .venv and data/raw)
	rm -rf data/interim data/splits models reports .prefect
