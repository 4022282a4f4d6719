# Training from Scratch: Initialization & Regularization -- `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= full
DEVICE  ?= auto
OUT     ?= report
ARGS    ?=

.PHONY: help venv check run report pdf test bench clean distclean

help: ## list the targets (this text)
	@awk 'BEGIN {FS = ":.*## "; printf "usage: make TARGET [PROFILE=quick|full] [DEVICE=auto|cpu|cuda] [OUT=report]\n\n"} \
	  /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev extras

check: $(STAMP) ## run the Karpathy-recipe gate (pytest checks) and record it in OUT/data/checks.json
	$(PY) -m pytest checks -q --tb=line -p no:cacheprovider --lab-device $(DEVICE) --checks-json $(OUT)/data/checks.json

run: check ## gate, then run every experiment at PROFILE (cached: only stale ones rerun)
	$(PY) -m lab run all --profile $(PROFILE) --device $(DEVICE) --out $(OUT) $(ARGS)

report: run ## gate, run, and render OUT/index.html + OUT/report.md (PROFILE=quick for a ~1 min smoke run)
	$(PY) -m lab report --out $(OUT)

# Prints what `make report` left; it never reruns experiments. `make report pdf` does both.
pdf: $(STAMP) ## print the existing OUT/index.html to OUT/report.pdf via headless Chromium (`make report pdf`: both)
	$(PY) -m lab pdf --out $(OUT)

test: $(STAMP) ## run tests/, checks/ and benchmarks/ once each as ordinary tests (no timing)
	$(PY) -m pytest -q --benchmark-disable -p no:cacheprovider --durations=10

bench: $(STAMP) ## time the training steps (pytest-benchmark) and save OUT/data/bench.json
	mkdir -p $(OUT)/data
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-only --benchmark-json $(OUT)/data/.bench.json.tmp $(ARGS)
	mv $(OUT)/data/.bench.json.tmp $(OUT)/data/bench.json

clean: ## remove the generated report (keeps .venv and the MNIST copy)
	rm -rf $(OUT) .pytest_cache .benchmarks

distclean: clean ## also remove .venv and the local MNIST copy under data/
	rm -rf $(VENV) data
