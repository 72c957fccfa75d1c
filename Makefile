# Every target builds the locked environment first. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# uv must use the machine's Python and never try to download one (there is no internet at run time).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Installed packages are byte-compiled once at install: with PYTHONDONTWRITEBYTECODE set (as on our machines) every
# process otherwise recompiled each module it imported, e.g. `import torchvision` 8.8 s -> 3.3 s, numba 0.9 s -> 0.3 s.
export UV_COMPILE_BYTECODE := 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1

.PHONY: help env demo-data demo-batch2 demo lint test server serve worker remote push pull check-ui chromium bench bench-env-dedup-peers bench-env-fastai clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

env: $(VENV)/.synced .dvc/plots/offline.html ## create .venv from uv.lock (installs uv with pip if missing)

$(VENV)/.synced: uv.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@if command -v uv >/dev/null 2>&1; then uv sync --frozen; else python3 -m uv sync --frozen; fi
	@touch $@

# The page `dvc plots show` fills (named in .dvc/config): Vega's scripts inlined from the locked vl-convert-python.
.dvc/plots/offline.html: $(VENV)/.synced finetuner/cli/plots_template.py
	@$(PY) -m finetuner.cli.plots_template $@

demo-data: env ## the demo dataset (data/raw), its source task (data/source) and the demo backbone, when absent
	$(PY) -m finetuner.demo.data
	$(PY) -m finetuner.demo.pretrain

demo-batch2: env ## add a second batch of new specimens to data/raw (to see scheduled retraining react)
	$(PY) -m finetuner.demo.data --batch 2

# Taken when make reads this file, so the figure printed at the end of `make demo` covers env and demo-data too.
DEMO_T0 := $(shell date +%s)

demo: env demo-data ## run the `finetune` Prefect flow locally (every stage through DVC), print the test metrics
	$(PY) -m flows.finetune
	@echo "make demo: $$(( $$(date +%s) - $(DEMO_T0) )) s in all (environment, demo data and backbone, pipeline)"

lint: env ## ruff: lint and format check (configured in pyproject.toml); `make test` runs it first
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: env lint ## run the lint check and the whole test suite (what CI runs)
	$(PY) -m pytest

server: env ## start a local Prefect server on 127.0.0.1:4200 (embedded SQLite)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

serve: env ## register and serve the deployments finetune/default and retrain/nightly (needs `make server`)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(PY) -m flows.serve

POOL ?= finetuner
worker: env ## deploy finetune/default + retrain/nightly to a process work pool (POOL=finetuner), start a worker
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(PY) -m flows.deploy --pool $(POOL)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(VENV)/bin/prefect worker start --pool $(POOL)

REMOTE ?=
remote: env ## make REMOTE (a directory, s3://..., gs://...; default ../<repo>-dvc-storage) the default DVC remote
	$(PY) -m finetuner.cli.remote $(REMOTE)

push: env ## dvc push data, models and the run cache to the DVC remote
	$(VENV)/bin/dvc push --run-cache

pull: env ## dvc pull data, models and the run cache from the DVC remote (then `dvc repro` reruns nothing)
	$(VENV)/bin/dvc pull --run-cache

check-ui: env chromium ## screenshot this project's artifacts in the Prefect UI with headless Chromium (needs `make server`, `make demo`)
	$(PY) -m flows.check_ui

chromium: ## install Debian's chromium for `make check-ui` when it is missing (apt-get; needs root)
	@command -v chromium >/dev/null 2>&1 || { apt-get update && apt-get install -y chromium; }

bench: env demo-data ## run the benchmarks in benchmarks/ (each prints our figure, a baseline and the ratio)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

bench-env-dedup-peers: ## benchmark-only env with imagededup, cleanvision, scikit-image (bench_dedup_quality.py)
	cd benchmarks/envs/dedup-peers && UV_PROJECT_ENVIRONMENT=$(CURDIR)/benchmarks/envs/dedup-peers/.venv uv sync --frozen

bench-env-fastai: ## the benchmark-only fastai environment (benchmarks/envs/fastai/.venv) for bench_recipe.py
	cd benchmarks/envs/fastai && UV_PROJECT_ENVIRONMENT=$(CURDIR)/benchmarks/envs/fastai/.venv uv sync --frozen

clean: ## remove generated data, models and reports (keeps .venv and data/raw)
	rm -rf data/interim data/splits models reports .prefect
