# openpi monorepo — every workflow is a make target. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
PY := $(VENV)/bin/python
FLEXIV_VENV ?= $(ROOT)/.venv-flexiv
export HF_LEROBOT_HOME ?= $(ROOT)/datasets
export OPENPI_DATA_HOME ?= $(HOME)/.cache/openpi
export PYTHONUNBUFFERED := 1

# `make upload-dataset PATH=datasets/x` is the documented form, but PATH is also the shell's search
# path: keep the user's value as the data path and restore a sane search path for the recipes.
ifneq ($(origin PATH),environment)
  ifeq ($(findstring :,$(PATH)),)
    DATA_PATH := $(PATH)
    override PATH := $(shell /usr/bin/env -i /bin/bash -lc 'echo $$PATH'):$(HOME)/.local/bin
    export PATH
  endif
endif

include mk/*.mk

.PHONY: help
help: ## List every target with a one-line description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST) | sort
