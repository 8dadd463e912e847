# Desire-backpropagation SNN toolkit: one entry point per job.
# Variables: PYTHON, PRESET (named config), CONFIG (TOML/JSON file), SIM (icarus|verilator|all),
# WAVES=1 (waveforms), SEED (replay a random test), TARGET (ecp5|ice40).

PYTHON ?= python3
PRESET ?= default
CONFIG ?=
SIM ?= all
CFG_ARGS = $(if $(CONFIG),--config $(CONFIG),--preset $(PRESET))
# WAVES and SEED given on the command line reach the simulations through the environment.

.PHONY: help setup test lint demo sim verilog bench bench-train bench-golden clean

help:
	@echo "make setup | test | demo | sim [SIM=icarus|verilator] [WAVES=1] | verilog | bench | lint"

setup:
	@bash tools/setup.sh

test: setup
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

demo: setup
	$(PYTHON) -m desire.demo $(CFG_ARGS)

sim: setup
	SIM=$(SIM) $(PYTHON) -m sim $(if $(CONFIG)$(filter-out default,$(PRESET)),$(CFG_ARGS))

verilog: setup
	$(PYTHON) -m rtl.verilog $(CFG_ARGS) --out build/

bench-train: setup
	$(PYTHON) bench/train_speed.py --out bench/results/train_speed.json

bench-golden: setup
	$(PYTHON) bench/golden_speed.py --out bench/results/golden_speed.json

bench: bench-train bench-golden

clean:
	rm -rf build sim_build runs .pytest_cache .ruff_cache
