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

# Recipes read these from the environment as "$$OUT", never pasted into the command line by make: a folder name
# with a space, a quote or a $ stays one argument. ARGS alone is split into words on purpose (extra pytest flags).
export PYTHON VENV PY PROFILE DEVICE OUT

.PHONY: help venv validate check run audit report pdf test bench clean distclean

help: ## list the targets (this text)
	@awk 'BEGIN {FS = ":.*## "; printf "usage: make TARGET [PROFILE=quick|full] [DEVICE=auto|cpu|cuda] [OUT=report]\n\n"} \
	  /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x "$$PY" || "$$PYTHON" -m venv "$$VENV"
	"$$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch "$$VENV/.installed"

venv: $(STAMP) ## create .venv and install the project with its dev extras

# Before any work (the gate takes seconds): a typo in PROFILE or DEVICE, or an empty OUT, is one line and exit 2,
# checked when make reads this file, for every target that uses them.
ifneq ($(filter check run audit report pdf bench clean distclean validate,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
ifneq ($(words $(PROFILE))$(filter-out quick full,$(PROFILE)),1)
$(error error: PROFILE=$(PROFILE) is not a profile (choose from: quick, full))
endif
ifneq ($(words $(DEVICE))$(filter-out auto cpu cuda,$(DEVICE)),1)
$(error error: DEVICE=$(DEVICE) is not a device (choose from: auto, cpu, cuda))
endif
ifeq ($(strip $(OUT)),)
$(error error: OUT is empty: name the report folder (OUT=report))
endif
endif

validate: ## check PROFILE, DEVICE and OUT (every target that uses them does this first)
	@true

check: validate $(STAMP) ## run the Karpathy-recipe gate (pytest checks) and record it in OUT/data/checks.json
	"$$PY" -m pytest checks -q --tb=line -p no:cacheprovider --lab-device "$$DEVICE" --checks-json "$$OUT/data/checks.json"

run: check ## gate, then run every experiment at PROFILE (cached: only stale ones rerun)
	"$$PY" -m lab run all --profile "$$PROFILE" --device "$$DEVICE" --out "$$OUT" $(ARGS)

# The audit recomputes a sample of every table's numbers with independent code (checks/audit) before rendering.
audit: validate $(STAMP) ## recompute the saved results' numbers with independent code; record OUT/data/audit.json
	"$$PY" -m lab audit --device "$$DEVICE" --out "$$OUT"

report: run ## gate, run, audit, and render OUT/index.html + OUT/report.md (PROFILE=quick for a ~1 min smoke run)
	"$$PY" -m lab audit --device "$$DEVICE" --out "$$OUT"
	"$$PY" -m lab report --out "$$OUT"

# Prints what `make report` left; it never reruns experiments. `make report pdf` does both.
pdf: validate $(STAMP) ## print the existing OUT/index.html to OUT/report.pdf via headless Chromium (`make report pdf`: both)
	"$$PY" -m lab pdf --out "$$OUT"

test: $(STAMP) ## run tests/, checks/ and benchmarks/ once each as ordinary tests (no timing)
	"$$PY" -m pytest -q --benchmark-disable -p no:cacheprovider --durations=10

# pytest-benchmark writes to a fresh mktemp name (created exclusively: never a file or link someone left there),
# renamed into place only when the run succeeded.
bench: validate $(STAMP) ## time the training steps (pytest-benchmark) and save OUT/data/bench.json
	mkdir -p -- "$$OUT/data"
	tmp=$$(mktemp "$$OUT/data/.bench.json.XXXXXXXX") && \
	  { "$$PY" -m pytest benchmarks -q -p no:cacheprovider --benchmark-only --benchmark-json "$$tmp" $(ARGS) \
	    && mv -f -- "$$tmp" "$$OUT/data/bench.json" || { rm -f -- "$$tmp"; exit 1; }; }

# Removes OUT only when it is a report folder (its data/ or index.html) or empty: `make clean OUT=~` must not
# empty a home folder.
clean: ## remove the generated report (keeps .venv and the MNIST copy)
	@if [ -e "$$OUT" ] && [ ! -d "$$OUT/data" ] && [ ! -e "$$OUT/index.html" ] && [ -n "$$(ls -A -- "$$OUT" 2>/dev/null)" ]; then \
	  echo "error: OUT=$$OUT does not look like a report folder (no data/ or index.html in it): not removed" >&2; exit 2; fi
	rm -rf -- "$$OUT" .pytest_cache .benchmarks

distclean: clean ## also remove .venv and the local MNIST copy under data/
	rm -rf -- "$$VENV" data
